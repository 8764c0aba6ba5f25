"""Training and evaluation: metrics, reports and plots shared by every predictor."""
