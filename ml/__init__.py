"""PyTorch side of the platform: model zoo, datasets, preprocessing, artifacts, training."""
