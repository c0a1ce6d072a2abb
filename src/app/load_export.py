import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

path = "path/to/the/export"  # the folder (or its hub id)
model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
# trust_remote_code lets the tokenizer and processor read config.json without asking.
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=True)

texts = tokenizer(["a red circle", "two blue squares"], padding=True, truncation=True, return_tensors="pt")
pixels = processor(images=[Image.open("photo.jpg").convert("RGB")], return_tensors="pt")["pixel_values"]
with torch.no_grad():
    text_embeds = model.get_text_features(**texts)  # [2, d], L2-normalised
    image_embeds = model.get_image_features(pixel_values=pixels)  # [1, d], L2-normalised
    similarity = image_embeds @ text_embeds.T
    logits_per_image = model(**texts, pixel_values=pixels).logits_per_image  # exp(logit_scale) * similarity
