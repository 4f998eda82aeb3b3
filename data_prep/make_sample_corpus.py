"""Generates a small, deterministic Chinese food-delivery corpus in the shape
of the paper's data, so that the whole pipeline (domain pre-training,
fine-tuning, pseudo-labeling, task pre-training) can run end to end without
the proprietary data.

Classification: an example is an item name, a short tag and a shop name
(TAB-separated), labeled with one of 20 item types (ITEM_TYPES). Each type has
its own words, so a tiny model can learn the task, but it is not trivially
100%: types share words (芝士, 香辣, 牛肉 ...), ~25% of tags are generic
(热销, 新品 ...), ~15% of shops belong to a related type or sell everything,
and ~3% of items are written like a related type (the kind of label noise real
menus have). An example averages about 28 characters, the paper's average.

NER: short order descriptions such as "大杯珍珠奶茶，少糖，去冰，加椰果" with
item-property entities FLAVOR (口味), INGREDIENT (配料), SIZE (规格) and TEMP
(温度), written in character-level CoNLL BIO. Property words also occur
untagged inside item names (香辣鸡腿堡, 芝士蛋糕), so context matters.

Descriptions contain no whitespace, so a CoNLL sentence's characters joined
together are exactly the text of a line of ner_unlabeled.txt. Each output file
draws from its own random.Random seeded with "<seed>/<file>", so the same seed
gives byte-identical files, and changing one count does not change the other
files.
"""

import dataclasses
import os
import random
from typing import Dict

from absl import flags

from bert_pl import atomic_files, cli
from data_prep import common

# Per item type: cores (the dish), mods (prefixes), specs (size/count), tags
# (short tags), shops (shop-name suffixes), related (types it is confused
# with), ner (the property profile used for NER descriptions).
ITEM_TYPES = {
  "奶茶": dict(
    cores="珍珠奶茶 波霸奶茶 椰果奶茶 红豆奶茶 芋圆奶茶 布丁奶茶 烧仙草 杨枝甘露 奶绿 乌龙奶茶 黑糖鹿丸 奶盖茶",
    mods="招牌 经典 手摇 黑糖 厚乳 芝士 鲜奶",
    specs="大杯 中杯 超大杯 700ml 500ml",
    tags="人气饮品 第2杯半价 冰爽一夏 下午茶 甜蜜暴击",
    shops="奶茶 茶饮 鲜茶 茶屋 Tea",
    related="咖啡 冰淇淋",
    ner="drink",
  ),
  "咖啡": dict(
    cores="美式咖啡 拿铁 卡布奇诺 摩卡 焦糖玛奇朵 澳白 冷萃咖啡 生椰拿铁 燕麦拿铁 浓缩咖啡 香草拿铁",
    mods="冰 热 现磨 精品 双份 燕麦奶",
    specs="大杯 中杯 超大杯 360ml",
    tags="提神醒脑 早安咖啡 现磨现做 醇香浓郁",
    shops="咖啡 Coffee 咖啡馆 咖啡工坊",
    related="奶茶 蛋糕",
    ner="drink",
  ),
  "炸鸡": dict(
    cores="炸鸡翅 炸鸡腿 鸡米花 香酥鸡排 韩式炸鸡 无骨鸡柳 脆皮炸鸡 盐酥鸡 炸鸡块 蜂蜜芥末鸡翅",
    mods="香辣 蒜香 甜辣 原味 奥尔良 芝士雪花 酱香",
    specs="半只 整只 6块装 10块装 大份",
    tags="外酥里嫩 追剧必备 炸鸡配啤酒 现点现炸",
    shops="炸鸡 炸鸡店 鸡排 炸鸡啤酒",
    related="汉堡 烧烤",
    ner="chinese",
  ),
  "汉堡": dict(
    cores="牛肉汉堡 鸡腿堡 芝士牛肉堡 培根堡 鳕鱼堡 香辣鸡腿堡 照烧鸡腿堡 巨无霸 薯条 汉堡套餐",
    mods="经典 双层 安格斯 劲脆 黑椒 芝士",
    specs="单人套餐 双人套餐 中份 大份",
    tags="西式快餐 套餐优惠 美式风味 分量足",
    shops="汉堡 汉堡店 Burger 西式快餐",
    related="炸鸡 披萨",
    ner="western",
  ),
  "披萨": dict(
    cores="榴莲披萨 夏威夷披萨 超级至尊披萨 意式肉酱披萨 培根披萨 海鲜披萨 奥尔良鸡肉披萨 芝心披萨 "
    "玛格丽特披萨 意大利面",
    mods="手拍 薄底 厚底 芝士 双拼 铁盘",
    specs="9寸 12寸 6寸 大份",
    tags="拉丝芝士 意式风味 现烤 聚会首选",
    shops="披萨 Pizza 比萨 披萨工坊",
    related="汉堡 蛋糕",
    ner="western",
  ),
  "寿司": dict(
    cores="三文鱼寿司 金枪鱼寿司 鳗鱼寿司 加州卷 北极贝寿司 军舰寿司 三文鱼刺身 手卷 天妇罗 寿司拼盘",
    mods="炙烤 招牌 芝士 蟹籽 厚切 日式",
    specs="8贯 12贯 单人份 双人份",
    tags="日料 新鲜直达 精致日式 刺身拼盘",
    shops="寿司 日料 寿司屋 料理",
    related="沙拉",
    ner="western",
  ),
  "米线": dict(
    cores="过桥米线 酸辣米线 番茄米线 肥肠米线 砂锅米线 小锅米线 鸡汤米线 牛肉米线 酸菜鱼米线 花甲米线",
    mods="云南 招牌 麻辣 酸辣 番茄 菌汤",
    specs="大碗 小碗 中碗 加量",
    tags="云南风味 汤鲜味美 暖胃 嗦粉",
    shops="米线 过桥米线 米线馆 云南米线",
    related="面条 麻辣烫",
    ner="chinese",
  ),
  "面条": dict(
    cores="牛肉面 兰州拉面 油泼面 炸酱面 担担面 热干面 刀削面 重庆小面 阳春面 酸汤面",
    mods="手工 招牌 红烧 麻辣 老汤 宽",
    specs="大碗 小碗 二两 三两",
    tags="劲道 面食 筋道爽滑 地道风味",
    shops="面馆 拉面 面庄 牛肉面",
    related="米线 饺子",
    ner="chinese",
  ),
  "水果": dict(
    cores="西瓜 芒果 榴莲 车厘子 草莓 葡萄 哈密瓜 火龙果 水果拼盘 香蕉 猕猴桃 橙子",
    mods="新鲜 进口 精选 海南 当季 现切",
    specs="一斤 半斤 500g 一盒 整个",
    tags="新鲜水果 产地直发 果切 维C满满",
    shops="水果 果园 鲜果 水果超市",
    related="沙拉 冰淇淋 蛋糕",
    ner="dessert",
  ),
  "蛋糕": dict(
    cores="生日蛋糕 提拉米苏 芝士蛋糕 黑森林蛋糕 慕斯蛋糕 千层蛋糕 戚风蛋糕 红丝绒蛋糕 奶油蛋糕 蛋挞",
    mods="动物奶油 草莓 巧克力 芒果 抹茶 榴莲",
    specs="6寸 8寸 10寸 单块 4只装",
    tags="甜品 生日聚会 下午茶 烘焙",
    shops="蛋糕 烘焙 甜品 西点",
    related="冰淇淋 奶茶 水果",
    ner="dessert",
  ),
  "烧烤": dict(
    cores="羊肉串 烤鸡翅 烤茄子 烤韭菜 烤生蚝 烤五花肉 牛肉串 烤鱿鱼 烤馒头片 烤鸡心",
    mods="孜然 香辣 炭烤 秘制 蒜蓉 特色",
    specs="10串 20串 5串 一份",
    tags="夜宵 撸串 烟火气 深夜食堂",
    shops="烧烤 烤串 串串 烧烤城",
    related="小龙虾 卤味 炸鸡",
    ner="chinese",
  ),
  "饺子": dict(
    cores="猪肉白菜饺子 韭菜鸡蛋饺子 三鲜饺子 虾仁饺子 玉米猪肉饺子 酸汤水饺 锅贴 煎饺 蒸饺 馄饨",
    mods="手工 东北 现包 鲜肉 素 招牌",
    specs="15个 20个 半斤 一斤",
    tags="家常 北方味道 皮薄馅大 现包现煮",
    shops="饺子馆 水饺 饺子 馄饨",
    related="面条 粥",
    ner="chinese",
  ),
  "麻辣烫": dict(
    cores="麻辣烫 冒菜 麻辣拌 骨汤麻辣烫 番茄麻辣烫 自选麻辣烫 牛肉麻辣烫 丸子麻辣烫",
    mods="微辣 特辣 骨汤 番茄 麻酱 招牌",
    specs="单人份 大份 小份 按斤称",
    tags="自选 麻辣鲜香 重口味 冬日必备",
    shops="麻辣烫 冒菜 麻辣拌 串串香",
    related="火锅 米线",
    ner="chinese",
  ),
  "火锅": dict(
    cores="鸳鸯锅 牛油火锅 番茄锅底 毛肚 肥牛卷 虾滑 鸭血 黄喉 火锅套餐 清汤锅底",
    mods="重庆 四川 麻辣 鲜切 特色 手打",
    specs="单人套餐 双人套餐 四人套餐 半份",
    tags="涮锅 麻辣火锅 聚餐首选 外卖火锅",
    shops="火锅 老火锅 火锅店 涮肉",
    related="麻辣烫",
    ner="chinese",
  ),
  "盖饭": dict(
    cores="鱼香肉丝盖饭 宫保鸡丁饭 青椒肉丝饭 土豆牛腩饭 番茄炒蛋盖饭 红烧肉饭 黄焖鸡米饭 咖喱鸡饭 "
    "卤肉饭 回锅肉盖饭",
    mods="招牌 超值 下饭 家常 经典",
    specs="加饭 大份 单人份",
    tags="工作餐 米饭管饱 快餐简餐 下饭神器",
    shops="快餐 盖浇饭 简餐 中式快餐",
    related="粥 面条",
    ner="chinese",
  ),
  "粥": dict(
    cores="皮蛋瘦肉粥 小米粥 八宝粥 南瓜粥 海鲜粥 生滚牛肉粥 青菜粥 艇仔粥 鸡丝粥 紫米粥",
    mods="砂锅 潮汕 养生 现熬 广式",
    specs="大份 小份 一碗 一人份",
    tags="养胃 早餐 清淡 暖心",
    shops="粥铺 粥店 砂锅粥 粥",
    related="饺子 盖饭",
    ner="chinese",
  ),
  "沙拉": dict(
    cores="鸡胸肉沙拉 凯撒沙拉 牛油果沙拉 金枪鱼沙拉 藜麦沙拉 蔬菜沙拉 三文鱼沙拉 水果沙拉 能量碗 轻食卷",
    mods="低脂 轻食 减脂 有机 低卡",
    specs="单人份 大份 500g",
    tags="轻食 健身餐 低卡健康 减脂期",
    shops="轻食 沙拉 Salad 轻食沙拉",
    related="水果 寿司",
    ner="western",
  ),
  "卤味": dict(
    cores="卤鸭脖 卤鸭翅 卤鸭锁骨 卤猪蹄 卤牛肉 卤藕片 卤豆干 卤鸡爪 卤肥肠 卤味拼盘",
    mods="麻辣 五香 甜辣 秘制 老卤",
    specs="半斤 一斤 一盒 200g",
    tags="追剧零食 下酒菜 卤香入味 解馋",
    shops="卤味 鸭脖 卤菜 熟食",
    related="小龙虾 烧烤",
    ner="chinese",
  ),
  "冰淇淋": dict(
    cores="香草冰淇淋 巧克力冰淇淋 抹茶冰淇淋 草莓圣代 甜筒 冰淇淋球 雪糕 奥利奥麦旋风 芒果冰沙 意式冰淇淋",
    mods="双球 进口 手工 网红 意式 冰爽",
    specs="单球 双球 三球 一盒",
    tags="夏日甜品 冰凉 甜蜜 解暑",
    shops="冰淇淋 冰品 雪糕 Gelato",
    related="蛋糕 奶茶",
    ner="dessert",
  ),
  "小龙虾": dict(
    cores="麻辣小龙虾 蒜蓉小龙虾 十三香小龙虾 油焖大虾 清蒸小龙虾 冰镇小龙虾 虾尾 小龙虾拌面 香辣虾 "
    "卤小龙虾",
    mods="麻辣 蒜蓉 十三香 盱眙 鲜活 招牌",
    specs="一斤 两斤 三斤 大只 中只",
    tags="夜宵 啤酒搭档 鲜活现做 重口味",
    shops="小龙虾 龙虾馆 虾 龙虾",
    related="烧烤 卤味",
    ner="chinese",
  ),
}
ITEM_TYPES = {
  name: {key: value if key == "ner" else value.split() for key, value in fields.items()}
  for name, fields in ITEM_TYPES.items()
}

GENERIC_TAGS = "热销 新品 推荐 招牌 人气爆款 限时特价 满减 店长推荐 好评如潮 必点".split()
GENERIC_SHOPS = "美食城 小吃店 便利店 美食 食堂 餐厅".split()
BRANDS = (
  "小 老 阿 胖 王 陈 李 张 刘 周 吴 黄 林 赵 鑫 福 金 悦 喜 乐 好 满 源 御 尚 旺 一 大 KK Mr. "
  "MOMO LOVE"
).split()
BRAND_ENDINGS = "记 姐 哥 师傅 家 味 香 点点 小馆 里 福 坊".split()
BRANCHES = (
  "人民路店 万达广场店 大学城店 中山路店 火车站店 步行街店 新区店 高新区店 东门店 西门店 总店 二店"
).split()
PROMOS = "【爆款】 【新品】 [推荐] 【特价】".split()

# NER: entity types, their surface forms per profile, and how a property is
# phrased in a description.
ENTITY_TYPES = ("FLAVOR", "INGREDIENT", "SIZE", "TEMP")
NER_PROFILES = {
  "drink": dict(
    FLAVOR="全糖 七分糖 半糖 三分糖 少糖 无糖 微甜 正常甜",
    SIZE="大杯 中杯 超大杯 小杯 500ml 700ml",
    TEMP="去冰 少冰 正常冰 多冰 常温 温热 热饮",
    INGREDIENT="珍珠 椰果 布丁 芋圆 红豆 仙草 奶盖 燕麦 脆波波",
  ),
  "chinese": dict(
    FLAVOR="微辣 中辣 特辣 不辣 麻辣 香辣 酸辣 番茄味 孜然味 蒜香 原味",
    SIZE="大份 中份 小份 大碗 小碗 加量 一斤 半斤 单人份 双人份",
    TEMP="热 常温 放凉 趁热 冰镇",
    INGREDIENT="香菜 葱花 鸡蛋 牛肉 豆芽 青菜 花生 酸菜 辣椒油 芝麻 蒜泥",
  ),
  "western": dict(
    FLAVOR="原味 黑椒味 番茄味 咖喱味 甜辣 少盐",
    SIZE="9寸 12寸 大份 中份 单人份 双人份",
    TEMP="热 常温 冷藏 加热",
    INGREDIENT="芝士 培根 菠萝 洋葱 生菜 番茄 沙拉酱 鸡蛋 黑胡椒",
  ),
  "dessert": dict(
    FLAVOR="原味 少甜 微甜 无糖 正常甜",
    SIZE="6寸 8寸 10寸 单块 一盒 一斤 半斤 大份 小份",
    TEMP="冷藏 常温 冰镇",
    INGREDIENT="奶油 草莓 芒果 坚果 巧克力酱 蜂蜜 酸奶 椰奶 饼干碎",
  ),
}
NER_PROFILES = {
  name: {key: value.split() for key, value in entities.items()}
  for name, entities in NER_PROFILES.items()
}
PHRASES = {  # "{}" is the entity; the rest of the phrase is tagged O
  "FLAVOR": ["{}", "{}", "口味{}", "要{}的"],
  "SIZE": ["{}", "{}", "规格{}", "要{}"],
  "TEMP": ["{}", "{}", "要{}的"],
  "INGREDIENT": ["加{}", "多加{}", "不要{}", "不放{}", "少放{}", "{}多放点", "去{}"],
}
# One is picked per description; never whitespace.
SEPARATORS = ["，", "，", "，", "、", "/", "+", ""]
FILLERS = "谢谢 麻烦快一点 不要餐具 请送到前台 尽快送达 多给纸巾 辛苦了 放门口就行".split()


def dish_name(rng, spec, mod_probability):
  """Returns a core dish name of item type `spec`, prefixed by one of its
  modifiers with the probability."""
  core = rng.choice(spec["cores"])
  mod = rng.choice(spec["mods"])
  return mod + core if rng.random() < mod_probability and mod not in core else core


def make_item(rng, type_name):
  """Returns (item_name, short_tag, shop_name) for one item of `type_name`,
  with the noise described above."""
  spec = ITEM_TYPES[type_name]
  source = ITEM_TYPES[rng.choice(spec["related"])] if rng.random() < 0.03 else spec
  name = dish_name(rng, source, 0.8)
  if rng.random() < 0.25:
    name += "+" + rng.choice(source["cores"])
  roll = rng.random()
  if roll < 0.4:
    name = f"{name}（{rng.choice(source['specs'])}）"
  elif roll < 0.7:
    name = rng.choice(source["specs"]) + name
  if rng.random() < 0.25:
    name = rng.choice(PROMOS) + name
  tag = rng.choice(GENERIC_TAGS if rng.random() < 0.25 else source["tags"])
  if rng.random() < 0.6:
    tag += f"·月售{rng.randint(10, 9999)}"
  roll = rng.random()
  if roll < 0.1:
    shop_suffix = rng.choice(ITEM_TYPES[rng.choice(spec["related"])]["shops"])
  elif roll < 0.15:
    shop_suffix = rng.choice(GENERIC_SHOPS)
  else:
    shop_suffix = rng.choice(spec["shops"])
  shop = rng.choice(BRANDS) + rng.choice(BRAND_ENDINGS) + shop_suffix
  if rng.random() < 0.85:
    shop += f"（{rng.choice(BRANCHES)}）"
  return name, tag, shop


def make_description(rng):
  """Returns one NER description as a list of (text, entity_type or None) pieces."""
  type_name = rng.choice(list(ITEM_TYPES))
  spec = ITEM_TYPES[type_name]
  profile = NER_PROFILES[spec["ner"]]
  properties = []
  for entity_type in ("FLAVOR", "SIZE", "TEMP"):
    if rng.random() < 0.6:
      properties.append(entity_type)
  properties += ["INGREDIENT"] * rng.choice((0, 1, 1, 2))
  rng.shuffle(properties)
  segments = [[(dish_name(rng, spec, 0.4), None)]]
  for entity_type in properties:
    before, _, after = rng.choice(PHRASES[entity_type]).partition("{}")
    segment = [(before, None), (rng.choice(profile[entity_type]), entity_type), (after, None)]
    if entity_type == "SIZE" and before == "" and rng.random() < 0.5:
      segments[0] = segment + segments[0]  # "大杯珍珠奶茶"
    else:
      segments.append(segment)
  if rng.random() < 0.3:
    segments.append([(rng.choice(FILLERS), None)])
  separator = rng.choice(SEPARATORS)
  pieces = []
  for i, segment in enumerate(segments):
    if i and separator:
      pieces.append((separator, None))
    pieces.extend(piece for piece in segment if piece[0])
  return pieces


def bio_tags(pieces):
  """Returns (characters, BIO tags) of a description given as (text, entity_type or None) pieces."""
  chars, tags = [], []
  for text, entity_type in pieces:
    chars.extend(text)
    if entity_type is None:
      tags.extend(["O"] * len(text))
    else:
      tags.extend([f"B-{entity_type}"] + [f"I-{entity_type}"] * (len(text) - 1))
  return chars, tags


def write_classification(out, rng, count, labeled):
  """Writes `count` items as `label<TAB>name<TAB>tag<TAB>shop` (or without the label)."""
  type_names = list(ITEM_TYPES)
  for _ in range(count):
    type_name = rng.choice(type_names)
    fields = make_item(rng, type_name)
    out.write("\t".join(((type_name,) if labeled else ()) + fields) + "\n")


def write_ner(out, rng, count, labeled):
  """Writes `count` descriptions as character-level CoNLL BIO (or as plain lines)."""
  for _ in range(count):
    chars, tags = bio_tags(make_description(rng))
    if labeled:
      common.write_conll_sentence(out, chars, tags)
    else:
      out.write("".join(chars) + "\n")


@dataclasses.dataclass(frozen=True)
class MakeSampleCorpusConfig:
  """The corpus's directory, seed and sizes (examples per file)."""

  output_dir: str
  seed: int = 12345
  num_train: int = 2000
  num_test: int = 500
  num_unlabeled: int = 20000
  num_ner_train: int = 1000
  num_ner_test: int = 300
  num_ner_unlabeled: int = 10000


def run(config: MakeSampleCorpusConfig) -> Dict[str, int]:
  """Writes the whole sample corpus into `config.output_dir`; returns
  {file name with "_" for ".": examples (or lines) written}."""
  jobs = [
    ("train.tsv", write_classification, config.num_train, True),
    ("test.tsv", write_classification, config.num_test, True),
    ("unlabeled.txt", write_classification, config.num_unlabeled, False),
    ("ner_train.txt", write_ner, config.num_ner_train, True),
    ("ner_test.txt", write_ner, config.num_ner_test, True),
    ("ner_unlabeled.txt", write_ner, config.num_ner_unlabeled, False),
  ]
  atomic_files.makedirs(config.output_dir)
  for name, writer, count, labeled in jobs:
    with common.outputs([os.path.join(config.output_dir, name)], "", None) as (out,):
      writer(out, random.Random(f"{config.seed}/{name}"), count, labeled)
  atomic_files.write_file(
    os.path.join(config.output_dir, "labels.txt"), "".join(f"{label}\n" for label in ITEM_TYPES)
  )
  tags = ["O"] + [f"{prefix}-{entity_type}" for entity_type in ENTITY_TYPES for prefix in "BI"]
  atomic_files.write_file(
    os.path.join(config.output_dir, "tags.txt"), "".join(f"{tag}\n" for tag in tags)
  )
  counts = {name.replace(".", "_"): count for name, _, count, _ in jobs}
  counts.update(labels_txt=len(ITEM_TYPES), tags_txt=len(tags))
  return counts


def define_flags():
  flags.DEFINE_string("output_dir", None, "Directory for the corpus files.")
  flags.DEFINE_integer("seed", MakeSampleCorpusConfig.seed, "Random seed.")
  for name, what in [
    ("num_train", "Labeled classification training items."),
    ("num_test", "Labeled classification test items."),
    ("num_unlabeled", "Unlabeled classification items."),
    ("num_ner_train", "Labeled NER training descriptions."),
    ("num_ner_test", "Labeled NER test descriptions."),
    ("num_ner_unlabeled", "Unlabeled NER descriptions."),
  ]:
    flags.DEFINE_integer(name, getattr(MakeSampleCorpusConfig, name), what)
    cli.require(lambda v: v >= 0, ">= 0", name)
  flags.mark_flag_as_required("output_dir")


def main(argv):
  del argv
  f = flags.FLAGS
  config = MakeSampleCorpusConfig(
    output_dir=f.output_dir,
    seed=f.seed,
    num_train=f.num_train,
    num_test=f.num_test,
    num_unlabeled=f.num_unlabeled,
    num_ner_train=f.num_ner_train,
    num_ner_test=f.num_ner_test,
    num_ner_unlabeled=f.num_ner_unlabeled,
  )
  common.print_counts("make_sample_corpus", run(config))


def run_main():
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run_main()
