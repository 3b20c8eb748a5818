"""Test support: the pytest plugin that brings up real servers, and shared fixtures."""
