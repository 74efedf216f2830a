"""Tools agents may call, with JSON schemas for the model and for GET /v1/tools."""
