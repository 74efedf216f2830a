"""How processes start: the CLI, the uvicorn server, the gunicorn worker, the task worker."""
