"""Real-world QA: countries/cities facts from installed packages (build.py) and FanOutQA (fanoutqa.py)."""
