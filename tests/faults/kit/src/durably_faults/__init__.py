"""durably's fault-injection suite (test-only): storage faults, a ledgered workload, a nemesis, a checker."""
