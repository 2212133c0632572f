"""Services of the monitoring app: the prediction-log buffer and feedback."""
