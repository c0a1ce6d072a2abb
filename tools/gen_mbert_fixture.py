#!/usr/bin/env python3
"""A tiny multilingual-BERT-shaped fixture (tests/fixtures/towers/mbert/).

bert-base-multilingual-cased in miniature:
  - a cased WordPiece tokenizer laid out like mBERT's: [PAD]=0, [unused1..99]=1..99, [UNK]=100,
    [CLS]=101, [SEP]=102, [MASK]=103, <S>=104, <T>=105, then the learned vocabulary; BertNormalizer
    (clean_text, handle_chinese_chars, no lower-casing, no accent stripping), BertPreTokenizer,
    "##" continuation. Learned with the `tokenizers` WordPiece trainer on CORPUS below (captions in
    English, Vietnamese, Azerbaijani, Russian, Turkish and German, written for this fixture).
    Files: tokenizer.json + tokenizer_config.json (BertTokenizerFast(tokenizer_object=...).save_pretrained),
    vocab.txt and special_tokens_map.json (transformers 5 no longer writes them for a fast tokenizer;
    written here as transformers 4 wrote them);
  - a random, perturbed BertModel with mBERT's config (its extra pooler_* / directionality keys
    included) but hidden 32, 2 layers, 4 heads, intermediate 64, 64 positions: config.json + model.safetensors;
  - reference.safetensors, with the keys and layout of the `bert` fixture (tools/gen_encoder_fixtures.py):
      input_ids [B, N] int64          SENTENCES, [CLS] ... [SEP], right-padded with [PAD] = 0
      attention_mask [B, N] int64
      token_type_ids [B, N] int64     1 from column N // 2 on (padding excluded), as for `bert`
      last_hidden_state [B, N, 32]    with those token types, eval mode
      pooler_output [B, 32]           with those token types
      last_hidden_state_no_types      without token_type_ids (all 0)
      mean_pooled [B, 32]             masked mean of last_hidden_state_no_types
  - expected.json: per sentence the text, the tokens and the ids (no padding).
The fast tokenizer's ids are asserted equal to the slow, pure-Python WordPiece tokenizer's
(transformers' BertTokenizerLegacy(vocab.txt, do_lower_case=False)) and to a tokenizer built from
vocab.txt alone the way otclip does when a folder has no tokenizer.json.

Run by hand with the versions in tools/requirements.txt:  python3 tools/gen_mbert_fixture.py
"""
import json
import os
import shutil
import unicodedata

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "towers", "mbert")
VOCAB_SIZE = 6000  # the trainer's target; it stops earlier once every corpus word is one token
MAX_BYTES = 1_500_000
torch.manual_seed(0)


def perturb(model):
    """As in tools/gen_encoder_fixtures.py: weights get noise, norms become ~N(1, .3)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.add_(0.1 * torch.randn_like(p))
    model.eval()
    return model


def fresh():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    return OUT


def save_ref(path, tensors):
    save_file({k: v.detach().contiguous().float() if v.is_floating_point() else v.contiguous().to(torch.int64) for k, v in tensors.items()}, os.path.join(path, "reference.safetensors"))


EN = """\
A young woman in a red coat walks her dog along the river.
Two children are building a sandcastle on a sunny beach.
An old man with a grey beard sits on a wooden bench reading a newspaper.
A black cat is sleeping on the windowsill next to a potted plant.
Several cyclists ride through the narrow streets of an old town.
A chef in a white hat is chopping vegetables in a busy kitchen.
The yellow school bus stops in front of a brick building.
A group of friends is having a picnic under a large oak tree.
A little girl holds a bunch of colourful balloons at the fair.
A fisherman throws his net from a small boat at dawn.
Snow covers the mountains behind a quiet village.
A man in a blue helmet is climbing a steep rock wall.
Two horses graze in a green field surrounded by a fence.
A woman is selling fresh fruit at a crowded market.
The city skyline glows with lights after sunset.
A boy jumps into a swimming pool while his sister watches.
A brown dog catches a frisbee in the park.
People are waiting for the train on a crowded platform.
A street musician plays the guitar for passing tourists.
An airplane is taking off from the runway on a cloudy morning.
A baby laughs while sitting in a high chair.
Three students study together at a library table.
A motorcycle is parked beside a small coffee shop.
The farmer drives a tractor across the wheat field.
A girl with long hair is painting a picture of flowers.
Two men are playing chess in the town square.
A large ship sails past the lighthouse.
A woman jogs along the beach early in the morning.
Children in school uniforms cross the street with their teacher.
A waiter carries a tray of drinks to a table on the terrace.
Heavy rain falls on the umbrellas of pedestrians.
A skateboarder performs a trick on a concrete ramp.
An elderly couple walks hand in hand through the autumn leaves.
A photographer takes pictures of a bride and groom.
A firefighter sprays water on a burning house.
The kitten is playing with a ball of wool.
A crowd cheers at a football match in a huge stadium.
A doctor examines a patient in a bright hospital room.
Ducks swim across a calm pond in the morning mist.
A woman in a green dress is dancing on the stage.
A truck loaded with bananas drives down a dusty road.
Two girls share an ice cream cone on a hot afternoon.
A man repairs the roof of his house with a hammer.
Colourful kites fly high above the hill.
A policeman directs traffic at a busy intersection.
The baker takes freshly baked bread out of the oven.
A young boy feeds pigeons in the square.
Tourists take photographs in front of an ancient temple.
A surfer rides a big wave near the rocky coast.
A mother reads a bedtime story to her son.
"""

VI = """\
Một người phụ nữ mặc áo dài đang đi xe đạp trên phố.
Hai đứa trẻ đang chơi đùa trên bãi cát gần biển.
Một ông lão ngồi câu cá bên bờ sông vào buổi sáng.
Con mèo đen nằm ngủ trên bậu cửa sổ.
Những chiếc thuyền nhỏ neo đậu ở bến cảng.
Người bán hàng rong đội nón lá đi qua con hẻm.
Một nhóm sinh viên đang học bài trong thư viện.
Chiếc xe buýt màu vàng dừng lại trước cổng trường.
Cô gái đang cắm hoa vào chiếc bình thủy tinh.
Đàn vịt bơi lội trên mặt hồ phẳng lặng.
Người nông dân đang cày ruộng với con trâu.
Phố cổ Hà Nội rất đông đúc vào buổi tối.
Một cậu bé đang thả diều trên cánh đồng lúa.
Bà cụ bán bánh mì ở góc đường.
Những ngọn núi phủ đầy sương mù ở Sa Pa.
Hai người đàn ông đang chơi cờ tướng dưới gốc cây.
Chợ nổi Cái Răng nhộn nhịp từ sáng sớm.
Một đầu bếp đang nấu phở trong căn bếp nhỏ.
Các em học sinh mặc đồng phục trắng đi đến trường.
Chiếc xe máy chở đầy hoa đi trên đường phố Sài Gòn.
Con chó nhỏ chạy theo quả bóng trong công viên.
Mưa rơi nặng hạt trên những mái nhà.
Một gia đình đang ăn cơm tối bên nhau.
Cô giáo đang giảng bài cho cả lớp.
Người thợ chụp ảnh cho cô dâu và chú rể.
Những chiếc đèn lồng đỏ treo dọc phố Hội An.
Một người đàn ông đang sửa xe đạp bên lề đường.
Bé gái cười tươi khi cầm chiếc bánh sinh nhật.
Đoàn khách du lịch chụp ảnh trước chùa Một Cột.
Vịnh Hạ Long đẹp lung linh dưới ánh hoàng hôn.
Một chú mèo con đang nghịch cuộn len.
Người dân tập thể dục quanh hồ Hoàn Kiếm.
Những cánh đồng ruộng bậc thang xanh mướt.
Anh ấy đang uống cà phê sữa đá ở quán ven đường.
Chiếc tàu hỏa chạy qua cây cầu sắt cũ.
Ngư dân kéo lưới trên chiếc thuyền thúng.
Trẻ em chơi nhảy dây trong sân trường.
Hai con ngựa đang gặm cỏ trên đồi.
Người phụ nữ gánh rau ra chợ bán.
Pháo hoa rực rỡ trên bầu trời đêm giao thừa.
Một cô bé đang tưới cây trong vườn.
Xe cứu hỏa đang phun nước dập lửa.
Các cầu thủ đang thi đấu bóng đá trên sân cỏ.
Bác sĩ đang khám bệnh cho một em bé.
Những quả xoài chín vàng treo trên cành.
Ông ấy đọc báo trên chiếc ghế gỗ trong công viên.
Đường phố ngập nước sau cơn mưa lớn.
Một chiếc máy bay cất cánh từ sân bay Tân Sơn Nhất.
Người nghệ sĩ đang chơi đàn bầu trên sân khấu.
Cậu bé nhảy xuống hồ bơi trong khi chị gái đứng nhìn.
Những đứa trẻ vây quanh ông già Noel.
Hàng cây xanh rợp bóng trên con đường ven hồ.
Một người thợ xây đang trát tường.
Chiếc xích lô chở khách đi dạo quanh phố cổ.
Cô ấy mặc chiếc váy đỏ và đội mũ rộng vành.
Đàn gà đang mổ thóc trong sân nhà.
Người đưa thư giao bưu phẩm bằng xe máy.
Bầu trời xanh ngắt không một gợn mây.
Các vận động viên đang chạy ma-ra-tông qua cầu Rồng.
Mẹ đang kể chuyện cổ tích cho con trước khi ngủ.
"""

AZ = """\
Qırmızı paltarlı qadın itini çay sahilində gəzdirir.
İki uşaq çimərlikdə qumdan qala tikir.
Ağ saqqallı qoca kişi skamyada oturub qəzet oxuyur.
Qara pişik pəncərənin qarşısında yatır.
Bir neçə velosipedçi köhnə şəhərin dar küçələrindən keçir.
Aşpaz mətbəxdə tərəvəz doğrayır.
Sarı məktəb avtobusu kərpic binanın qarşısında dayanır.
Dostlar böyük palıd ağacının altında gəzintiyə çıxıblar.
Kiçik qız əlində rəngli şarlar tutur.
Balıqçı səhər tezdən qayıqdan tor atır.
Qar kəndin arxasındakı dağları örtür.
Mavi dəbilqəli kişi sıldırım qayaya dırmaşır.
İki at hasarla əhatə olunmuş yaşıl çəmənlikdə otlayır.
Qadın izdihamlı bazarda təzə meyvə satır.
Gün batandan sonra Bakının işıqları yanır.
Oğlan hovuza tullanır, bacısı isə ona baxır.
Qəhvəyi it parkda frizbini tutur.
İnsanlar platformada qatarı gözləyirlər.
Küçə musiqiçisi turistlər üçün gitara çalır.
Təyyarə buludlu səhərdə uçuş zolağından havaya qalxır.
Körpə uşaq hündür stulda oturub gülür.
Üç tələbə kitabxanada birlikdə dərs oxuyur.
Motosiklet kiçik qəhvəxananın yanında dayanıb.
Fermer traktoru buğda sahəsində sürür.
Uzun saçlı qız çiçəklərin şəklini çəkir.
İki kişi meydanda şahmat oynayır.
Böyük gəmi mayakın yanından keçir.
Qadın səhər tezdən sahil boyunca qaçır.
Məktəbli forması geyinmiş uşaqlar müəllimləri ilə küçəni keçirlər.
Ofisiant terrasdakı masaya içki aparır.
Güclü yağış piyadaların çətirlərinə tökülür.
Skeytbordçu beton enişdə fənd göstərir.
Yaşlı ər-arvad payız yarpaqları arasında əl-ələ gəzir.
Fotoqraf gəlin və bəyin şəklini çəkir.
Yanğınsöndürən yanan evə su səpir.
Pişik balası yun yumağı ilə oynayır.
Nəhəng stadionda azarkeşlər futbol matçını alqışlayır.
Həkim işıqlı xəstəxana otağında xəstəni müayinə edir.
Ördəklər səhər dumanında sakit gölməçədə üzür.
Yaşıl donlu qadın səhnədə rəqs edir.
Banan yüklənmiş yük maşını tozlu yolla gedir.
İsti günortada iki qız dondurma bölüşür.
Kişi çəkiclə evinin damını təmir edir.
Rəngbərəng uçurtmalar təpənin üstündə uçur.
Polis işçisi sıx yol ayrıcında hərəkəti tənzimləyir.
Çörəkçi təzə bişmiş çörəyi sobadan çıxarır.
Balaca oğlan meydanda göyərçinlərə dən verir.
Turistlər qədim məbədin qarşısında şəkil çəkdirirlər.
Sörfçü qayalı sahilin yaxınlığında böyük dalğaya minir.
Ana oğluna yatmazdan əvvəl nağıl oxuyur.
İçərişəhərdə Qız qalasının yanında çoxlu turist var.
Şəki şəhərində xan sarayının pəncərələri rəngli şüşədəndir.
Qobustanda qayaüstü rəsmlərə baxan məktəblilər.
Gəncədə Nizami Gəncəvinin məqbərəsi ziyarətçilərlə doludur.
Xəzər dənizinin sahilində uşaqlar top oynayır.
Çayxanada kişilər armudu stəkanda çay içirlər.
Novruz bayramında tonqalın üstündən tullanan gənclər.
Dağ kəndində qoyun sürüsü yamacda otlayır.
Şuşa qalasının divarları günəş işığında parlayır.
İlin ilk qarı Bakı bulvarını ağ örtüklə bürüyüb.
"""

RU = """\
Молодая женщина в красном пальто гуляет с собакой вдоль реки.
Двое детей строят замок из песка на солнечном пляже.
Пожилой мужчина с седой бородой читает газету на скамейке.
Чёрная кошка спит на подоконнике рядом с цветком.
Велосипедисты едут по узким улицам старого города.
Повар в белом колпаке режет овощи на кухне.
Жёлтый школьный автобус остановился у кирпичного здания.
Друзья устроили пикник под большим дубом.
Маленькая девочка держит разноцветные воздушные шары.
Рыбак забрасывает сеть с лодки на рассвете.
Снег покрывает горы за тихой деревней.
Мужчина в синем шлеме взбирается на отвесную скалу.
Две лошади пасутся на зелёном лугу за забором.
Женщина продаёт свежие фрукты на многолюдном рынке.
После заката город сияет огнями.
Мальчик прыгает в бассейн, а сестра смотрит на него.
Коричневая собака ловит фрисби в парке.
Люди ждут поезд на переполненной платформе.
Уличный музыкант играет на гитаре для туристов.
Самолёт взлетает с полосы пасмурным утром.
Малыш смеётся, сидя на высоком стульчике.
Трое студентов занимаются вместе в библиотеке.
Мотоцикл припаркован возле маленькой кофейни.
Фермер ведёт трактор через пшеничное поле.
Девушка с длинными волосами рисует цветы.
Двое мужчин играют в шахматы на площади.
Большой корабль проплывает мимо маяка.
Женщина бегает по пляжу рано утром.
Школьники в форме переходят улицу вместе с учителем.
Официант несёт поднос с напитками на террасу.
Сильный дождь льёт на зонты прохожих.
Скейтбордист выполняет трюк на бетонной рампе.
Пожилая пара гуляет, держась за руки, среди осенних листьев.
Фотограф снимает жениха и невесту.
Пожарный поливает водой горящий дом.
Котёнок играет с клубком шерсти.
Болельщики радуются на огромном стадионе.
Врач осматривает пациента в светлой палате.
Утки плывут по спокойному пруду в утреннем тумане.
Женщина в зелёном платье танцует на сцене.
Грузовик с бананами едет по пыльной дороге.
Две девочки делят мороженое жарким днём.
Мужчина чинит крышу дома молотком.
Яркие воздушные змеи летают над холмом.
Полицейский регулирует движение на перекрёстке.
Пекарь достаёт из печи свежий хлеб.
Мальчик кормит голубей на площади.
Туристы фотографируются у древнего храма.
Сёрфер катится на большой волне у скалистого берега.
Мама читает сыну сказку перед сном.
"""

TR = """\
Kırmızı montlu genç bir kadın köpeğini nehir kenarında gezdiriyor.
İki çocuk güneşli bir plajda kumdan kale yapıyor.
Gri sakallı yaşlı bir adam bankta oturmuş gazete okuyor.
Siyah bir kedi pencerenin önünde uyuyor.
Birkaç bisikletçi eski şehrin dar sokaklarından geçiyor.
Beyaz şapkalı aşçı mutfakta sebze doğruyor.
Sarı okul otobüsü tuğla binanın önünde duruyor.
Arkadaşlar büyük bir meşe ağacının altında piknik yapıyor.
Küçük kız elinde rengârenk balonlar tutuyor.
Balıkçı şafakta küçük bir tekneden ağ atıyor.
Kar, sessiz köyün arkasındaki dağları örtüyor.
Mavi kasklı adam dik bir kayaya tırmanıyor.
İki at çitle çevrili yeşil bir çayırda otluyor.
Kadın kalabalık pazarda taze meyve satıyor.
Gün batımından sonra İstanbul'un ışıkları yanıyor.
Oğlan havuza atlıyor, kız kardeşi onu izliyor.
Kahverengi köpek parkta frizbi yakalıyor.
İnsanlar kalabalık peronda treni bekliyor.
Sokak müzisyeni turistler için gitar çalıyor.
Uçak bulutlu bir sabah pistten havalanıyor.
Bebek mama sandalyesinde oturup gülüyor.
Üç öğrenci kütüphanede birlikte ders çalışıyor.
Motosiklet küçük bir kahvenin yanına park edilmiş.
Çiftçi traktörüyle buğday tarlasını sürüyor.
Uzun saçlı kız çiçek resmi yapıyor.
İki adam meydanda satranç oynuyor.
Büyük bir gemi deniz fenerinin önünden geçiyor.
Kadın sabahın erken saatlerinde sahilde koşuyor.
Okul üniformalı çocuklar öğretmenleriyle karşıya geçiyor.
Garson terastaki masaya içecek taşıyor.
Şiddetli yağmur yayaların şemsiyelerine yağıyor.
Kaykaycı beton rampada bir numara yapıyor.
Yaşlı bir çift sonbahar yaprakları arasında el ele yürüyor.
Fotoğrafçı gelin ile damadın fotoğrafını çekiyor.
İtfaiyeci yanan eve su sıkıyor.
Yavru kedi yün yumağıyla oynuyor.
Taraftarlar dev stadyumda maçı coşkuyla izliyor.
Doktor aydınlık hastane odasında hastayı muayene ediyor.
Ördekler sabah sisinde sakin gölette yüzüyor.
Yeşil elbiseli kadın sahnede dans ediyor.
Muz yüklü kamyon tozlu yolda ilerliyor.
Sıcak bir öğleden sonra iki kız dondurma paylaşıyor.
Adam çekiçle evinin çatısını onarıyor.
Rengârenk uçurtmalar tepenin üzerinde uçuyor.
Trafik polisi yoğun kavşakta trafiği yönetiyor.
Fırıncı fırından taze ekmek çıkarıyor.
Küçük çocuk meydanda güvercinleri besliyor.
Turistler antik tapınağın önünde fotoğraf çekiyor.
Sörfçü kayalık kıyının yakınında büyük bir dalgaya biniyor.
Anne oğluna uyumadan önce masal okuyor.
"""

DE = """\
Eine junge Frau im roten Mantel führt ihren Hund am Fluss spazieren.
Zwei Kinder bauen an einem sonnigen Strand eine Sandburg.
Ein älterer Mann mit grauem Bart liest auf einer Bank die Zeitung.
Eine schwarze Katze schläft auf der Fensterbank neben einer Topfpflanze.
Mehrere Radfahrer fahren durch die engen Gassen der Altstadt.
Ein Koch mit weißer Mütze schneidet Gemüse in einer Küche.
Der gelbe Schulbus hält vor einem Backsteingebäude.
Eine Gruppe von Freunden macht ein Picknick unter einer großen Eiche.
Ein kleines Mädchen hält bunte Luftballons auf dem Jahrmarkt.
Ein Fischer wirft im Morgengrauen sein Netz aus einem kleinen Boot.
Schnee bedeckt die Berge hinter einem ruhigen Dorf.
Ein Mann mit blauem Helm klettert eine steile Felswand hinauf.
Zwei Pferde grasen auf einer grünen Wiese hinter einem Zaun.
Eine Frau verkauft frisches Obst auf einem belebten Markt.
Nach Sonnenuntergang leuchtet die Stadt in tausend Lichtern.
Ein Junge springt in das Schwimmbecken, während seine Schwester zuschaut.
Ein brauner Hund fängt im Park eine Frisbeescheibe.
Menschen warten auf einem überfüllten Bahnsteig auf den Zug.
Ein Straßenmusiker spielt Gitarre für vorbeigehende Touristen.
Ein Flugzeug startet an einem bewölkten Morgen von der Landebahn.
Ein Baby lacht in seinem Hochstuhl.
Drei Studenten lernen gemeinsam in der Bibliothek.
Ein Motorrad parkt neben einem kleinen Café.
Der Bauer fährt mit dem Traktor über das Weizenfeld.
Ein Mädchen mit langen Haaren malt ein Bild von Blumen.
Zwei Männer spielen Schach auf dem Marktplatz.
Ein großes Schiff fährt am Leuchtturm vorbei.
Eine Frau joggt früh am Morgen am Strand entlang.
Schulkinder in Uniform überqueren mit ihrer Lehrerin die Straße.
Ein Kellner trägt ein Tablett mit Getränken auf die Terrasse.
Starker Regen prasselt auf die Regenschirme der Fußgänger.
Ein Skateboarder zeigt einen Trick auf einer Betonrampe.
Ein älteres Ehepaar geht Hand in Hand durch das Herbstlaub.
Ein Fotograf fotografiert die Braut und den Bräutigam.
Ein Feuerwehrmann spritzt Wasser auf ein brennendes Haus.
Das Kätzchen spielt mit einem Wollknäuel.
Die Zuschauer jubeln in einem riesigen Fußballstadion.
Eine Ärztin untersucht einen Patienten in einem hellen Krankenzimmer.
Enten schwimmen im Morgennebel über einen stillen Teich.
Eine Frau im grünen Kleid tanzt auf der Bühne.
Ein mit Bananen beladener Lastwagen fährt über eine staubige Straße.
Zwei Mädchen teilen sich an einem heißen Nachmittag ein Eis.
Ein Mann repariert mit einem Hammer das Dach seines Hauses.
Bunte Drachen fliegen hoch über dem Hügel.
Ein Polizist regelt den Verkehr an einer belebten Kreuzung.
Der Bäcker holt frisch gebackenes Brot aus dem Ofen.
Ein kleiner Junge füttert die Tauben auf dem Platz.
Touristen fotografieren sich vor einem alten Tempel.
Ein Surfer reitet eine große Welle vor der felsigen Küste.
Eine Mutter liest ihrem Sohn eine Gutenachtgeschichte vor.
"""

CORPUS = [line for block in (EN, VI, AZ, RU, TR, DE) for line in block.splitlines() if line.strip()]

# The reference batch: diacritics, mixed and upper case (Azerbaijani dotted İ and dotless I),
# punctuation, words the vocabulary splits into several ## pieces, an emoji alone and glued to a
# word (the whole word becomes [UNK]), CJK characters (each one a word of its own, then [UNK]),
# and a soft hyphen (a format character that clean_text drops).
SENTENCES = [
    "Một cô gái đang đọc sách dưới gốc cây phượng vĩ.",
    "Hai con chó chạy trên bãi biển xanh, còn Ông Già thì ngồi câu cá!",
    "Qız parkda velosipedçilərlə birlikdə gəzir.",
    "İKİ QIZ İSTİ günəşdə oynayır: İlham, Ilqar və ŞƏKİ!",
    "Ein Feuerwehrmannschaftswagen fährt über die Brücke (Donaubrücke).",
    "Собака бежит по снегу, а Kırmızı şapkalı çocuk ağlıyor?",
    "A cat 🐱 sleeps on the sofa😴 near 猫猫 and a Fahr\u00adrad.",
    "THE YELLOW BUS stops; the bus stops.",
]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def alphabet():
    """Every character of the scripts involved, as mBERT's vocabulary has them whatever the corpus:
    printable ASCII, Latin-1 and Latin Extended-A, Ə ə, Vietnamese's Ơ ơ Ư ư and its precomposed
    letters (U+1EA0..U+1EF9), the Russian alphabet, and some typographic punctuation. Format / control
    characters (the soft hyphen) are left out: clean_text removes them before WordPiece sees them."""
    ranges = [(0x21, 0x7E), (0xA1, 0xFF), (0x100, 0x17F), (0x1EA0, 0x1EF9), (0x410, 0x44F)]
    chars = [chr(c) for lo, hi in ranges for c in range(lo, hi + 1)]
    chars += list("ƏəƠơƯưЁё–—‘’“”„…«»€")
    return [c for c in dict.fromkeys(chars) if not unicodedata.category(c).startswith("C") and not c.isspace()]


def continuation_chars():
    """The "##" form of every letter and digit of the alphabet and of the corpus, in code point order."""
    chars = set(alphabet()) | set("".join(CORPUS))
    return ["##" + c for c in sorted(chars) if unicodedata.category(c)[0] in "LN"]


def mbert_layout(trained_vocab):
    """mBERT's id layout: [PAD]=0, [unused1..99]=1..99, [UNK]=100, [CLS]=101, [SEP]=102,
    [MASK]=103, <S>=104, <T>=105, then every single character of `alphabet()` (mBERT starts
    with its characters too), the learned tokens in the trainer's order, and last the "##" forms
    of the letters and digits."""
    head = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "<S>", "<T>"]
    continued = continuation_chars()
    skip = set(SPECIALS) | set(continued)
    learned = [t for t, _ in sorted(trained_vocab.items(), key=lambda kv: kv[1]) if t not in skip]
    assert not set(head) & set(learned)
    tokens = list(dict.fromkeys(head + alphabet() + learned + continued))
    assert tokens.index("[UNK]") == 100 and tokens.index("[CLS]") == 101 and tokens.index("[SEP]") == 102 and tokens.index("[MASK]") == 103
    return tokens


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    def pipeline(tok):
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        return tok

    for line in CORPUS:
        assert unicodedata.is_normalized("NFC", line), line
    trainer_tok = pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")))
    # The trainer breaks ties between equally frequent pairs by symbol id. It numbers the alphabet in code
    # point order but gives the "##x" symbols ids in the order it meets them in a randomly seeded hash map,
    # so on its own two runs learn different vocabularies. Listing every "##x" among the special tokens
    # numbers them up front (in code point order) and makes the training deterministic; mbert_layout
    # places them at the end of the vocabulary.
    trainer = trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, min_frequency=0, special_tokens=SPECIALS + continuation_chars(),
                                        initial_alphabet=alphabet(), limit_alphabet=1000, continuing_subword_prefix="##",
                                        show_progress=False)
    trainer_tok.train_from_iterator(CORPUS, trainer)
    tokens = mbert_layout(trainer_tok.get_vocab())
    tok = pipeline(Tokenizer(models.WordPiece({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]", max_input_chars_per_word=100)))
    tok.post_processor = processors.TemplateProcessing(single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 101), ("[SEP]", 102)])
    return tok, tokens


def save_tokenizer(path, tok, tokens):
    from transformers import BertTokenizerFast

    fast = BertTokenizerFast(tokenizer_object=tok, do_lower_case=False, strip_accents=False, tokenize_chinese_chars=True,
                             unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
                             model_max_length=64)
    fast.save_pretrained(path)
    # transformers 5 writes only tokenizer.json + tokenizer_config.json for a fast tokenizer; transformers 4
    # also wrote these two (vocab.txt: one token a line, in id order), and mBERT's hub folder has a vocab.txt.
    with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for t in tokens)
    special = {k: getattr(fast, k) for k in ("cls_token", "mask_token", "pad_token", "sep_token", "unk_token")}
    with open(os.path.join(path, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(special, f, indent=2)
        f.write("\n")
    return fast


def check_tokenizers(path, ids_fast):
    """The same ids from the slow (pure-Python) WordPiece tokenizer on vocab.txt, from the folder
    reloaded by transformers, from tokenizer.json alone (what the Rust `tokenizers` crate reads), and
    from vocab.txt + tokenizer_config.json the way otclip builds a tokenizer without tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import AutoTokenizer
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    slow = BertTokenizerLegacy(os.path.join(path, "vocab.txt"), do_lower_case=False)
    reloaded = AutoTokenizer.from_pretrained(path)
    raw = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    with open(os.path.join(path, "tokenizer_config.json"), encoding="utf-8") as f:
        lower = json.load(f).get("do_lower_case", True)
    assert lower is False
    # otclip (src/text/mod.rs, vocab.txt branch): BertNormalizer::new(true, true, None, lower), BertPreTokenizer, [CLS] $A [SEP].
    from_vocab = Tokenizer(models.WordPiece.from_file(os.path.join(path, "vocab.txt"), unk_token="[UNK]"))
    from_vocab.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lower)
    from_vocab.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    from_vocab.decoder = decoders.WordPiece()
    from_vocab.post_processor = processors.BertProcessing(("[SEP]", 102), ("[CLS]", 101))
    for text, ids in zip(SENTENCES, ids_fast):
        assert slow(text)["input_ids"] == ids, (text, slow.tokenize(text), ids)
        assert reloaded(text)["input_ids"] == ids, text
        assert raw.encode(text).ids == ids, text
        assert from_vocab.encode(text).ids == ids, text
    # Not asserted, reported: the slow tokenizer NFC-normalizes first, BertNormalizer does not.
    nfd = unicodedata.normalize("NFD", SENTENCES[0])
    same = slow(nfd)["input_ids"] == reloaded(nfd)["input_ids"]
    print(f"NFD input: slow == fast: {same}  (slow {len(slow(nfd)['input_ids'])} ids, fast {len(reloaded(nfd)['input_ids'])} ids)")


def main():
    from transformers import BertConfig, BertModel

    path = fresh()
    tok, tokens = build_tokenizer()
    fast = save_tokenizer(path, tok, tokens)
    assert len(fast) == len(tokens) == tok.get_vocab_size()

    enc = [fast(s) for s in SENTENCES]
    ids_list = [e["input_ids"] for e in enc]
    check_tokenizers(path, ids_list)
    cases = [{"text": s, "tokens": fast.convert_ids_to_tokens(ids), "ids": ids} for s, ids in zip(SENTENCES, ids_list)]
    with open(os.path.join(path, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")

    # bert-base-multilingual-cased's config.json, shrunk (its pooler_* keys are unused leftovers that
    # transformers keeps as extra attributes).
    config = BertConfig(vocab_size=len(tokens), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu", hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1, initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0,
                        directionality="bidi", pooler_fc_size=32, pooler_num_attention_heads=4, pooler_num_fc_layers=3,
                        pooler_size_per_head=8, pooler_type="first_token_transform")
    model = perturb(BertModel(config, add_pooling_layer=True))
    model.save_pretrained(path, safe_serialization=True)

    n = max(len(ids) for ids in ids_list)
    assert n <= config.max_position_embeddings, n
    ids = torch.tensor([x + [0] * (n - len(x)) for x in ids_list])
    mask = torch.tensor([[1] * len(x) + [0] * (n - len(x)) for x in ids_list])
    padded = fast(SENTENCES, padding=True, return_tensors="pt")
    assert torch.equal(padded["input_ids"], ids) and torch.equal(padded["attention_mask"], mask)
    types = torch.zeros_like(ids)
    types[:, n // 2:] = 1
    types = types * mask
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        out0 = model(input_ids=ids, attention_mask=mask)
    m = mask.unsqueeze(-1).float()
    save_ref(path, dict(input_ids=ids, attention_mask=mask, token_type_ids=types,
                        last_hidden_state=out.last_hidden_state, pooler_output=out.pooler_output,
                        last_hidden_state_no_types=out0.last_hidden_state,
                        mean_pooled=(out0.last_hidden_state * m).sum(1) / m.sum(1)))

    total = 0
    for name in sorted(os.listdir(path)):
        size = os.path.getsize(os.path.join(path, name))
        total += size
        print(f"  {name}: {size} bytes")
    print(f"vocab {len(tokens)} tokens, batch {tuple(ids.shape)}, total {total} bytes")
    assert total <= MAX_BYTES, total
    for case in cases:
        print(case["text"])
        print("  ", " ".join(case["tokens"]))
        print("  ", case["ids"])
    print("wrote", os.path.abspath(path))


if __name__ == "__main__":
    main()
