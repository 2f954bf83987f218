"""One module per schema revision of the KMS database, oldest first."""
