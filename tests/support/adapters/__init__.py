"""Framework objects the adapter tests serve (one module per framework)."""
