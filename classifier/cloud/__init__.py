"""One module per outside system: the only places that import a google.cloud client or catch its errors."""
