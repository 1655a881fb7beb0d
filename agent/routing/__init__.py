"""Alert management: grouping, inhibition, silences, maintenance windows."""
