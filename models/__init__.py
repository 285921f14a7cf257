"""The networks of the five systems as plain torch modules: no data, no training."""
