"""Beyond one machine: Ray Data feature extraction (`cbir.scale.ray_extract`) and indexing into a Milvus
collection (`cbir.scale.milvus_indexing`, over `cbir.retrieval.milvus_store`). Optional: ``pip install
'cbir[scale]'``; ray and pymilvus are imported when used, with a message naming the extra when missing."""
