"""In-training tuning: ADA, DiffAugment and learning-rate schedules."""
