"""`aelab-explore`: the latent space of trained runs as a local web app (the optional extra `aelab[explore]`).

runs.py finds the runs of a folder (no torch), session.py answers the page's questions through the module API,
render.py turns outputs into HTML, views.py answers each control of the page, app.py lays the page out (Gradio)
and serves it.
"""
