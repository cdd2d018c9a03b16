"""In-memory LightningDataModules, one per source."""
