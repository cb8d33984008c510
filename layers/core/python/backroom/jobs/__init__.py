"""The job engine shared by runtime jobs, gateway errands and account tasks."""
