"""Views of results: matplotlib figures (`plots`), Embedding Projector files and t-SNE maps (`projector`)."""
