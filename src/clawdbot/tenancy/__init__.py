"""Tenancy: the master key, virtual keys, users and teams; who a request is and what it may use."""
