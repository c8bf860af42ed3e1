"""From scores to a decision: the routing policy, the rules in force, the phrase bank and the
customer's references. Data files (policy.toml, phrases.toml) plus pure functions."""
