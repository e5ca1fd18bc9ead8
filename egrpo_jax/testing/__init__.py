"""Test doubles and reference implementations (a scripted rollout engine, a plain greedy decoder).

Used by tests/ and bench/; nothing in the runtime package imports this folder.
"""
