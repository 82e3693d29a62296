"""What the model sees: labels, confidence, two models side by side, and exports of the lists (issue 14)."""
