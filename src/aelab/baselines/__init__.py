"""Classical baselines that a paper table puts beside the autoencoders, fitted in closed form by scikit-learn."""
