print("seqlab")
