"""Human review of the model's labels: a queue of unsure classifications and the operators' verdicts."""
