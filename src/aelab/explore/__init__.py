"""`aelab-explore`: the latent space of trained runs as a local web app (the optional extra `aelab[explore]`).

runs.py finds the runs of a folder (no torch), session.py answers the page's questions through the module API,
render.py turns outputs into HTML, app.py lays out the page (Gradio) and serves it.
"""
