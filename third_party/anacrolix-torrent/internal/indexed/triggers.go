package indexed
