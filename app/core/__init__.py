"""Rules every layer shares: settings, errors, problem+json, lifecycle, clock, breaker, routes."""
