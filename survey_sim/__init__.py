"""survey-sim: specialise LLMs to simulate survey answer distributions of whole populations."""

__version__ = "0.1.0"
