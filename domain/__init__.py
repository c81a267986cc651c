"""Pure rules of the platform: aggregates, commands, decisions and folds. No I/O."""
