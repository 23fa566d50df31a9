"""Serving a trained model: a self-contained model file (model_file.py), recommendations for live
histories (recommender.py) and the ``recommend`` command line (cli.py)."""
