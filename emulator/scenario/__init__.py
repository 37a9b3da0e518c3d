"""Scenario files: a topology, clients, a timeline of actions and expectations."""
