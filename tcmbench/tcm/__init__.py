"""TCM: the CLIP-based module of "Turning a CLIP Model into a Scene Text
Detector" (CVPR 2023), as a wrapper any detector plugin opts into."""
