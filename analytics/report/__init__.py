"""Reports over CloudFront logs and rehearsals (HTML, Markdown, PNG, JSON)."""
