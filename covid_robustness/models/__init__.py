"""The five architectures behind one registry, and the LightningModule that trains any of them."""
