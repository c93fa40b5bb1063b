"""Detection: declarative rules, key posture, the IsolationForest and the engine."""
