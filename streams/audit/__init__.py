"""Audits: replay from Kafka, compare with what was emitted, explain a lead or a referrer.

Everything here reads the log with private consumers (no group, no commits) and runs the same
rules core as the live worker; nothing here writes to the live topics, tables or group.
"""
