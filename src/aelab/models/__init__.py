"""The LightningModule that trains every composition (autoencoder.py) and the model API it offers."""
