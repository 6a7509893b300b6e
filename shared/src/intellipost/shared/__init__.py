"""Shared machinery for every IntelliPost component: config, logs, traces, health, errors."""
