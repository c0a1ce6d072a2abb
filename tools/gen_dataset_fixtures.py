#!/usr/bin/env python3
"""Writes tiny datasets in exactly each native format into tests/fixtures/datasets/.

Run by hand (never in CI): /work/pyenv/bin/python tools/gen_dataset_fixtures.py
Oddities on purpose: a corrupt JPEG, a truncated PNG, missing files, 11-digit UIT names,
Vietnamese with combining (NFD) and precomposed (NFC) diacritics, CRLF token files, an XM3600
line lacking `vi`, empty captions and paths that escape the dataset root.
"""
import io
import json
import shutil
import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "datasets"


def picture(seed, size=(64, 48)):
    """A blocky colour pattern, distinct per seed (so perceptual hashes differ)."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return Image.fromarray(cells, "RGB").resize(size, Image.BILINEAR)


def save_jpeg(path, seed, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(seed, **kw).save(path, "JPEG", quality=85)


def save_png(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(seed).save(path, "PNG")


def corrupt_jpeg(path):
    """SOI marker, then garbage: no decoder can find a frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(7, 250)) * 3)


def truncated_png(path, seed):
    buf = io.BytesIO()
    picture(seed).save(buf, "PNG")
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])


def write_json(path, value, indent=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=indent), encoding="utf-8")


def write_lines(path, lines, newline="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))


VI = [
    "Một con mèo đang ngủ trên chiếc ghế sofa màu xanh.",
    "Hai người đàn ông đang đứng cạnh chiếc xe máy.",
    "Một người phụ nữ đội nón lá bán hoa quả ở chợ.",
    "Những đứa trẻ đang chơi đá bóng trên bãi biển.",
    "Một chiếc thuyền nhỏ neo đậu trên dòng sông yên ả.",
    "Bát phở bò nóng hổi đặt trên bàn gỗ.",
    "Người đàn ông đang đạp xe trên con đường đông đúc.",
    "Cô gái mặc áo dài trắng đi dạo trong công viên.",
]


def nfd(text):
    return unicodedata.normalize("NFD", text)


def uit():
    root = OUT / "uit-openviic"
    test = {
        "00000005095.jpg": {"captions": [VI[0], nfd(VI[1]), VI[2], VI[3], VI[4]]},
        "00000005096.jpg": {"captions": [VI[5], "", "   ", VI[6]]},
        "00000000017.jpg": {"captions": [VI[7], VI[0]]},
        "00000000018.jpg": {"captions": [VI[1], VI[2], VI[3]]},
        "../../etc/passwd": {"captions": [VI[4]]},
    }
    write_json(root / "uit-openviic-annotation-test.json", test, indent=2)
    write_json(root / "uit-openviic-annotation-train.json",
               {"00000000101.jpg": {"captions": VI[0:2]}, "00000000102.jpg": {"captions": VI[2:4]}})
    write_json(root / "uit-openviic-annotation-dev.json", {"00000000201.jpg": {"captions": VI[4:6]}})
    save_jpeg(root / "images" / "00000005095.jpg", 1)
    save_jpeg(root / "images" / "00000005096.jpg", 2)
    corrupt_jpeg(root / "images" / "00000000017.jpg")
    save_jpeg(root / "images" / "00000000101.jpg", 3)
    save_jpeg(root / "images" / "00000000102.jpg", 4)
    save_jpeg(root / "images" / "00000000201.jpg", 5)


def ktvic():
    root = OUT / "ktvic"

    def split(name, folder, ids, seeds):
        images, annotations = [], []
        for image_id, seed in zip(ids, seeds):
            filename = f"{image_id:011d}.jpg"
            images.append({"filename": filename, "id": image_id})
            for k in range(5):
                caption = VI[(image_id + k) % len(VI)].rstrip(".").lower()
                annotations.append({"id": len(annotations), "image_id": image_id, "caption": caption,
                                    "segment_caption": caption.replace("đàn ông", "đàn_ông").replace("con mèo", "con_mèo")})
            if seed == "dup":  # a near-duplicate of UIT's 00000005095.jpg, re-encoded at another size
                save_jpeg(root / folder / filename, 1, size=(80, 60))
            else:
                save_jpeg(root / folder / filename, seed)
        write_json(root / name, {"images": images, "annotations": annotations})

    split("train_data.json", "train-images", [1, 2], [10, 11])
    split("test_data.json", "public-test-images", [1, 2], [12, "dup"])


def xm3600():
    root = OUT / "xm3600"

    def lang(captions):
        return {"caption": captions, "caption/tokenized": [c.lower() for c in captions],
                "caption/tokenized/lowercase": [c.lower() for c in captions]}

    lines = [
        {"image/key": "000411001ff7dd4f", "image/locale": "en",
         "en": lang(["A dog on a sofa.", "Brown dog resting."]), "vi": lang([VI[0], VI[1]])},
        {"image/key": "00130a2bf8f3d7ab", "image/locale": "vi",
         "vi": lang([nfd(VI[2]), VI[3], VI[4]]), "en": lang(["A woman selling fruit."])},
        {"image/key": "0015e5a8b4e5bd3e", "image/locale": "de",
         "de": lang(["Ein Boot auf dem Fluss."]), "en": lang(["A boat on a river."])},
    ]
    write_lines(root / "captions.jsonl", [json.dumps(l, ensure_ascii=False) for l in lines])
    for seed, line in enumerate(lines):
        save_jpeg(root / "images" / f"{line['image/key']}.jpg", 20 + seed)


FLICKR8K = ["1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg", "1002674143_1b742ab4b8.jpg",
            "1003163366_44323f5815.jpg"]
EN = ["A child in a pink dress is climbing up a set of stairs in an entry way .",
      "A black dog and a spotted dog are fighting", "A little girl covered in paint sits in front of a painted rainbow .",
      "A man lays on a bench while his dog sits by him .", "Two young guys with shaggy hair look at their hands ."]


def flickr():
    root = OUT / "flickr8k"
    lines = [f"{name}#{k}\t{EN[(i + k) % 5]}" for i, name in enumerate(FLICKR8K) for k in range(5)]
    lines.insert(7, "2258277193_586949ec62.jpg.1#0\tA man in a red shirt .")  # the real file's stray entry
    write_lines(root / "Flickr8k.token.txt", lines, newline="\r\n")
    write_lines(root / "Flickr_8k.trainImages.txt", FLICKR8K[:2], newline="\r\n")
    write_lines(root / "Flickr_8k.devImages.txt", FLICKR8K[2:3], newline="\r\n")
    write_lines(root / "Flickr_8k.testImages.txt", FLICKR8K[3:], newline="\r\n")
    for seed, name in enumerate(FLICKR8K):
        save_jpeg(root / "Flicker8k_Dataset" / name, 30 + seed)
    sentences = lambda i: [{"tokens": EN[(i + k) % 5].lower().split(), "raw": EN[(i + k) % 5], "imgid": i,
                            "sentid": i * 5 + k} for k in range(5)]
    write_json(root / "dataset_flickr8k.json", {"images": [
        {"sentids": list(range(i * 5, i * 5 + 5)), "imgid": i, "sentences": sentences(i), "split": split, "filename": name}
        for i, (name, split) in enumerate(zip(FLICKR8K, ["train", "train", "val", "test"]))], "dataset": "flickr8k"})

    kaggle = OUT / "flickr8k-kaggle"
    rows = ["image,caption"]
    for i, name in enumerate(FLICKR8K[:2]):
        for k in range(5):
            caption = EN[(i + k) % 5]
            rows.append(f'{name},"{caption}, indoors"' if k == 4 else f"{name},{caption}")
    write_lines(kaggle / "captions.txt", rows)
    for seed, name in enumerate(FLICKR8K[:2]):
        save_jpeg(kaggle / "Images" / name, 30 + seed)

    f30k = OUT / "flickr30k"
    names = ["1000092795.jpg", "10002456.jpg"]
    write_lines(f30k / "results_20130124.token", [f"{n}#{k}\t{EN[(i + k) % 5]}" for i, n in enumerate(names) for k in range(5)])
    for seed, name in enumerate(names):
        save_jpeg(f30k / "flickr30k-images" / name, 40 + seed)
    k30 = OUT / "flickr30k-kaggle"
    write_lines(k30 / "results.csv", ["image_name| comment_number| comment"] +
                [f"{n}| {k}| {EN[(i + k) % 5]}" for i, n in enumerate(names) for k in range(5)])
    for seed, name in enumerate(names):
        save_jpeg(k30 / "flickr30k_images" / name, 40 + seed)


def karpathy_coco():
    root = OUT / "karpathy-coco"
    entries = [("val2014", 391895, "restval"), ("train2014", 522418, "train"), ("val2014", 184613, "val"), ("val2014", 318219, "test")]
    images = []
    for i, (folder, cocoid, split) in enumerate(entries):
        name = f"COCO_{folder}_{cocoid:012d}.jpg"
        save_jpeg(root / folder / name, 50 + i)
        images.append({"filepath": folder, "sentids": [i * 2, i * 2 + 1], "filename": name, "imgid": i, "split": split,
                       "sentences": [{"tokens": EN[k].lower().split(), "raw": EN[k], "imgid": i, "sentid": i * 2 + k} for k in range(2)],
                       "cocoid": cocoid})
    write_json(root / "dataset_coco.json", {"images": images, "dataset": "coco"})


def coco():
    root = OUT / "coco"
    info = {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017}
    licenses = [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, "name": "Attribution-NonCommercial-ShareAlike License"}]

    def split(name, ids, counts, seed):
        images, annotations = [], []
        for j, (image_id, count) in enumerate(zip(ids, counts)):
            file_name = f"{image_id:012d}.jpg"
            images.append({"license": 1, "file_name": file_name, "coco_url": f"http://images.cocodataset.org/{name}/{file_name}",
                           "height": 48, "width": 64, "date_captured": "2013-11-14 17:02:52",
                           "flickr_url": "http://farm7.staticflickr.com/x.jpg", "id": image_id})
            save_jpeg(root / name / file_name, seed + j)
            for k in range(count):
                annotations.append({"image_id": image_id, "id": 370509 + len(annotations), "caption": EN[k % 5] + "\n"})
        write_json(root / "annotations" / f"captions_{name}.json",
                   {"info": info, "licenses": licenses, "images": images, "annotations": annotations})

    split("val2017", [397133, 37777], [5, 6], 60)
    split("train2017", [391895], [5], 70)


def viclip_ot():
    root = OUT / "viclip-ot"
    write_json(root / "test.json", {"images": [{"id": 0, "image_path": "images/a.jpg"}, {"id": "b", "image_path": "images/b.png"},
                                               {"id": 2, "image_path": "../../etc/passwd"}],
                                    "annotations": [{"id": 0, "caption": VI[0], "image_id": 0}, {"id": 1, "caption": VI[1], "image_id": 0},
                                                    {"id": 2, "caption": VI[2], "image_id": "b"}, {"id": 3, "caption": VI[3], "image_id": "b"},
                                                    {"id": 4, "caption": VI[4], "image_id": 2}]})
    write_json(root / "train.json", {"images": [{"id": 10, "image_path": "images/c.jpg"}, {"id": 11, "image_path": "images/d.jpg"}],
                                     "annotations": [{"id": k, "caption": VI[k], "image_id": 10 + k // 2} for k in range(4)]})
    write_json(root / "val.json", {"images": [{"id": 20, "image_path": "images/e.jpg"}],
                                   "annotations": [{"id": 0, "caption": VI[6], "image_id": 20}, {"id": 1, "caption": VI[7], "image_id": 20}]})
    save_jpeg(root / "images" / "a.jpg", 80)
    truncated_png(root / "images" / "b.png", 81)
    for seed, name in enumerate("cde"):
        save_jpeg(root / "images" / f"{name}.jpg", 82 + seed)


def table():
    root = OUT / "table"
    write_lines(root / "open_clip.tsv", ["filepath\ttitle", f"images/x.jpg\t{EN[0]}", f"images/y.jpg\t{VI[0]}", f"images/x.jpg\t{EN[1]}"])
    write_lines(root / "pairs.csv", ["image,caption,image_id,split", f"images/x.jpg,{EN[0]},1,train", f"images/y.jpg,{EN[1]},2,train",
                                     f'images/z.png,"{EN[2]}, again",3,val', f"images/x.jpg,{EN[3]},1,train", f"images/gone.jpg,{EN[4]},4,test"])
    write_lines(root / "pairs.jsonl", [json.dumps(r, ensure_ascii=False) for r in [
        {"image": "images/x.jpg", "caption": VI[0], "image_id": 1}, {"image": "images/y.jpg", "caption": nfd(VI[1]), "image_id": 2},
        {"image": "images/x.jpg", "caption": VI[2], "image_id": 1}, {"image": "images/z.png", "caption": "", "image_id": 3},
        {"image": "/etc/passwd", "caption": VI[3], "image_id": 5}]])
    save_jpeg(root / "images" / "x.jpg", 90)
    save_jpeg(root / "images" / "y.jpg", 91)
    truncated_png(root / "images" / "z.png", 92)


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    for make in (uit, ktvic, xm3600, flickr, karpathy_coco, coco, viclip_ot, table):
        make()
    print("wrote", OUT)
