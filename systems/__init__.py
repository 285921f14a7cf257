"""The five systems, each as what it contributes to the shared loop and experiment layer (one file or two each)."""
