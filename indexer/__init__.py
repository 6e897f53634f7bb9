"""Assets in: the catalog (store of record), image decoding, embeddings, FAISS vectors."""
