"""Kafka plumbing: the project's own local broker and helpers shared by the shell."""
