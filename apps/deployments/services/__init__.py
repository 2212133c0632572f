"""Services of the deployments app; the public entry point is `model_deployment_service`."""
