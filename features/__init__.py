"""Feature extraction and the one feature store shared by every system."""
