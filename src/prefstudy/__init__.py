"""prefstudy: Optuna studies of preference optimization (DPO vs IPO)."""
