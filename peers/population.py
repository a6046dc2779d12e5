"""A deterministic synthetic population of Meguro ward (目黒区, municipality code 131105).

Resident ``i`` is a pure function of ``(seed, i, today)``: its randomness is one BLAKE2b digest
of ``(seed, i)``, read as six 64-bit words that successive ``divmod`` draws consume, so any slice
can be regenerated on its own.  Resident codes and individual numbers are affine bijections of
``i`` (unique by construction) and can be computed without building the record.  The population is the live
file: every record is an entry (転入, 出生, 職権記載) or a later 転居, with record status "0".
Tables are built at import, so a record costs a hash, two check digits and some formatting.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import struct
from collections.abc import Iterator
from typing import NamedTuple

from firmware_app.domain.checkdigits import (
    complete_individual_number,
    complete_resident_code,
    municipality_check_digit,
)
from firmware_app.domain.kana import seion
from firmware_app.domain.record import FLAG_OFF, FLAG_ON, STATUS_LIVE, IdentityRecord

MUNICIPALITY_CODE = "131105"

_SPACE = "\u3000"  # ideographic space between surname and given name
_KANJI_DIGITS = "一二三四五六"
_GAIJI_FIRST, _GAIJI_SPAN = 0xE000, 0x1900  # private-use U+E000–U+F8FF

# Shares, per mille unless named otherwise.
_FOREIGN = 30
_FORMER_SURNAME = (8, 40)  # of adult men and women: ≈ 2 % of everyone, mostly married women
_NAME_GAIJI = 5
_ADDRESS_GAIJI = 2
_FEMALE_PERCENT = 52
_ALIAS_PERCENT = 60  # Chinese and Korean residents who use a 通称
_APARTMENT_PERCENT = 55
_MOVED_WITHIN_PERCENT = 25  # the last change is a 転居 inside Meguro
_NUMBER_PENDING = 100  # 1 in 100: a newborn whose 個人番号 is not yet assigned

# Bijections of the resident index onto the code spaces (multipliers coprime to 10).
_RC_MOD, _RC_MUL = 10**10, 3_141_592_653
_IN_MOD, _IN_MUL = 10**11, 27_182_818_287

_YEAR_DAYS = 365
_BAND_DAYS = 1826  # five years
# Relative number of residents per five-year age band (0–4, 5–9, …, 100–104).
_AGE_WEIGHTS = (45, 42, 38, 38, 55, 85, 90, 85, 78, 80, 82, 68, 55, 48, 55, 48, 38, 24, 11, 3, 1)
_FOREIGN_AGE_WEIGHTS = (20, 12, 8, 10, 120, 160, 110, 70, 45, 30, 20, 12, 8, 5, 3, 2, 1)
# How far back a move-in may lie: within 1, 3, 10, 30 years, or any time since birth.
_ENTRY_WINDOWS = (_YEAR_DAYS, 3 * _YEAR_DAYS, 10 * _YEAR_DAYS, 30 * _YEAR_DAYS, 120 * _YEAR_DAYS)

_SURNAMES_TEXT = """
佐藤:サトウ 鈴木:スズキ 高橋:タカハシ 田中:タナカ 伊藤:イトウ 渡辺:ワタナベ 山本:ヤマモト 中村:ナカムラ
小林:コバヤシ 加藤:カトウ 吉田:ヨシダ 山田:ヤマダ 佐々木:ササキ 山口:ヤマグチ 松本:マツモト 井上:イノウエ
木村:キムラ 林:ハヤシ 斎藤:サイトウ 清水:シミズ 山崎:ヤマザキ 森:モリ 池田:イケダ 橋本:ハシモト
阿部:アベ 石川:イシカワ 山下:ヤマシタ 中島:ナカジマ 石井:イシイ 小川:オガワ 前田:マエダ 岡田:オカダ
長谷川:ハセガワ 藤田:フジタ 後藤:ゴトウ 近藤:コンドウ 村上:ムラカミ 遠藤:エンドウ 青木:アオキ 坂本:サカモト
斉藤:サイトウ 福田:フクダ 太田:オオタ 西村:ニシムラ 藤井:フジイ 金子:カネコ 岡本:オカモト 藤原:フジワラ
中野:ナカノ 三浦:ミウラ 原田:ハラダ 中川:ナカガワ 松田:マツダ 竹内:タケウチ 小野:オノ 田村:タムラ
中山:ナカヤマ 和田:ワダ 石田:イシダ 森田:モリタ 上田:ウエダ 原:ハラ 内田:ウチダ 柴田:シバタ
酒井:サカイ 宮崎:ミヤザキ 横山:ヨコヤマ 高木:タカギ 安藤:アンドウ 宮本:ミヤモト 大野:オオノ 小島:コジマ
谷口:タニグチ 今井:イマイ 工藤:クドウ 高田:タカダ 増田:マスダ 丸山:マルヤマ 杉山:スギヤマ 村田:ムラタ
大塚:オオツカ 小山:コヤマ 藤本:フジモト 平野:ヒラノ 新井:アライ 河野:コウノ 上野:ウエノ 野口:ノグチ
武田:タケダ 松井:マツイ 千葉:チバ 岩崎:イワサキ 菅原:スガワラ 木下:キノシタ 久保:クボ 佐野:サノ
野村:ノムラ 松尾:マツオ 市川:イチカワ 菊地:キクチ 杉本:スギモト 古川:フルカワ 大西:オオニシ 島田:シマダ
水野:ミズノ 桜井:サクライ 高野:タカノ 渡部:ワタナベ 吉川:ヨシカワ 山内:ヤマウチ 西田:ニシダ 飯田:イイダ
菊池:キクチ 西川:ニシカワ 小松:コマツ 北村:キタムラ 安田:ヤスダ 五十嵐:イガラシ 川口:カワグチ 平田:ヒラタ
関:セキ 中田:ナカタ 久保田:クボタ 服部:ハットリ 東:アズマ 岩田:イワタ 土屋:ツチヤ 川崎:カワサキ
福島:フクシマ 本田:ホンダ 辻:ツジ 樋口:ヒグチ 秋山:アキヤマ 田口:タグチ 永井:ナガイ 山中:ヤマナカ
中西:ナカニシ 吉村:ヨシムラ 川上:カワカミ 石原:イシハラ 大橋:オオハシ 松岡:マツオカ 馬場:ババ 浅野:アサノ
荒木:アラキ 大久保:オオクボ 野田:ノダ 小池:コイケ 松下:マツシタ 谷:タニ 大石:オオイシ 菅野:カンノ
熊谷:クマガイ 望月:モチヅキ 内藤:ナイトウ 小西:コニシ 片山:カタヤマ 早川:ハヤカワ 細川:ホソカワ 堀:ホリ
松村:マツムラ 小田:オダ 今村:イマムラ 須藤:スドウ 荒井:アライ 星野:ホシノ 黒田:クロダ 岡崎:オカザキ
桑原:クワハラ 宮田:ミヤタ 関口:セキグチ 森本:モリモト 上原:ウエハラ 小沢:オザワ 大竹:オオタケ 栗原:クリハラ
宮内:ミヤウチ 古賀:コガ 石橋:イシバシ 松浦:マツウラ 杉浦:スギウラ 新田:ニッタ 八木:ヤギ 堀田:ホッタ
吉岡:ヨシオカ 西山:ニシヤマ 小笠原:オガサワラ 東海林:ショウジ 庄司:ショウジ 城:ジョウ 京極:キョウゴク 長:チョウ
神谷:カミヤ 北川:キタガワ 牧野:マキノ 根本:ネモト 大川:オオカワ 篠原:シノハラ 萩原:ハギワラ 三宅:ミヤケ
髙橋:タカハシ 渡邉:ワタナベ 渡邊:ワタナベ 齋藤:サイトウ 齊藤:サイトウ 澤田:サワダ 濱田:ハマダ 廣瀬:ヒロセ
広瀬:ヒロセ 髙木:タカギ 柳田:ヤナギダ 野澤:ノザワ 龍野:タツノ 茅野:チノ 百瀬:モモセ 四方田:ヨモダ
"""

# Given names by sex and by era of birth (before 1960, 1960–1994, from 1995).
_MALE_TEXTS = (
    """
茂:シゲル 清:キヨシ 実:ミノル 博:ヒロシ 勇:イサム 正:タダシ 明:アキラ 進:ススム 稔:ミノル 豊:ユタカ
修:オサム 和夫:カズオ 正男:マサオ 一郎:イチロウ 次郎:ジロウ 三郎:サブロウ 勝:マサル 昭:アキラ 勉:ツトム
武:タケシ 弘:ヒロシ 隆:タカシ 敏夫:トシオ 正雄:マサオ 幸雄:ユキオ 信夫:ノブオ 義男:ヨシオ 繁:シゲル
忠:タダシ 健三:ケンゾウ 源太郎:ゲンタロウ 銀次郎:ギンジロウ 善吉:ゼンキチ 譲:ユズル 純一:ジュンイチ 昇:ノボル
寛:ヒロシ 晃:アキラ 孝:タカシ 秀雄:ヒデオ 彰:アキラ 寿一:ジュイチ 武雄:タケオ 徳治:トクジ
""",
    """
健一:ケンイチ 誠:マコト 大輔:ダイスケ 拓也:タクヤ 直樹:ナオキ 健二:ケンジ 浩二:コウジ 達也:タツヤ 和也:カズヤ
哲也:テツヤ 智也:トモヤ 雄一:ユウイチ 剛:ツヨシ 学:マナブ 聡:サトシ 修平:シュウヘイ 俊介:シュンスケ 慎吾:シンゴ
秀樹:ヒデキ 康弘:ヤスヒロ 伸也:シンヤ 恭平:キョウヘイ 京介:キョウスケ 健太:ケンタ 翔平:ショウヘイ 亮:リョウ
翼:ツバサ 大介:ダイスケ 徹:トオル 圭:ケイ 祐介:ユウスケ 雄大:ユウダイ 順一:ジュンイチ 純:ジュン 淳:ジュン
隆之:タカユキ 英樹:ヒデキ 貴之:タカユキ 洋平:ヨウヘイ 丈:ジョウ 譲二:ジョウジ 勇気:ユウキ 亮太:リョウタ
涼太:リョウタ 翔太:ショウタ 拓海:タクミ 大樹:ダイキ 大輝:ダイキ 龍之介:リュウノスケ 駿:シュン 隼人:ハヤト
""",
    """
翔:ショウ 蓮:レン 悠真:ユウマ 湊:ミナト 陽翔:ハルト 蒼:アオイ 樹:イツキ 大翔:ヒロト 悠人:ユウト 颯太:ソウタ
陸:リク 大和:ヤマト 匠:タクミ 悠斗:ユウト 陽太:ヨウタ 朝陽:アサヒ 碧:アオイ 律:リツ 新:アラタ 蒼空:ソラ
優斗:ユウト 海斗:カイト 奏太:ソウタ 航:ワタル 大地:ダイチ 岳:ガク 玄:ゲン 颯:ハヤテ 陽向:ヒナタ 結翔:ユイト
瑛太:エイタ 煌:コウ 蒼真:ソウマ 律希:リツキ 暖:ダン 柊:シュウ 伊織:イオリ 凪:ナギ 旭:アサヒ 晴:ハル
隼:ジュン 翔太:ショウタ 勇気:ユウキ 大輝:ダイキ 拓海:タクミ 駿:シュン 龍之介:リュウノスケ 亮:リョウ 智也:トモヤ
""",
)
_FEMALE_TEXTS = (
    """
キヨ:キヨ ハル:ハル トメ:トメ 千代:チヨ 富子:トミコ 良子:ヨシコ 昭子:アキコ 敏子:トシコ 美代子:ミヨコ
照子:テルコ 幸子:サチコ 和子:カズコ 節子:セツコ 洋子:ヨウコ 恵子:ケイコ 京子:キョウコ 静子:シズコ 和代:カズヨ
文子:フミコ 百合子:ユリコ 花子:ハナコ 千鶴子:チヅコ 久子:ヒサコ 澄子:スミコ 雅子:マサコ 美智子:ミチコ
弘子:ヒロコ 悦子:エツコ 順子:ジュンコ 信子:ノブコ 貞子:サダコ 喜代子:キヨコ
""",
    """
恵子:ケイコ 久美子:クミコ 由美子:ユミコ 裕子:ユウコ 優子:ユウコ 直美:ナオミ 明美:アケミ 真由美:マユミ
智子:トモコ 陽子:ヨウコ 純子:ジュンコ 恭子:キョウコ 響子:キョウコ 友美:トモミ 由香:ユカ 美穂:ミホ 理恵:リエ
絵美:エミ 恵:メグミ 愛:アイ 舞:マイ 彩:アヤ 綾香:アヤカ 麻衣:マイ 沙織:サオリ 香織:カオリ 由紀:ユキ
千尋:チヒロ 翔子:ショウコ 祥子:ショウコ 早紀:サキ 美咲:ミサキ 静香:シズカ 小百合:サユリ 樹里:ジュリ
珠希:タマキ 梓:アズサ 瑞希:ミズキ 美月:ミヅキ 千鶴:チヅル 奈々:ナナ 菜々子:ナナコ 遥:ハルカ 七海:ナナミ
愛子:アイコ 京子:キョウコ
""",
    """
陽菜:ヒナ 結衣:ユイ 葵:アオイ 結菜:ユイナ 凛:リン 芽依:メイ 紬:ツムギ 陽葵:ヒマリ 澪:ミオ 杏:アン
咲良:サクラ さくら:サクラ ひなた:ヒナタ 莉子:リコ 美優:ミユ 心春:コハル 芽生:メイ 真央:マオ 優花:ユウカ
彩花:アヤカ 未来:ミライ 楓:カエデ 茜:アカネ 栞:シオリ 雫:シズク 琴音:コトネ 美咲:ミサキ 結愛:ユア 心結:ミユ
紗良:サラ 凪咲:ナギサ 杏奈:アンナ 美桜:ミオ 詩:ウタ 朱莉:アカリ 柚希:ユズキ 柚葉:ユズハ 和奏:ワカナ
千尋:チヒロ 遥:ハルカ 七海:ナナミ 綾乃:アヤノ 舞:マイ 愛:アイ 瑞希:ミズキ 美月:ミヅキ 風花:フウカ 萌:モエ
杏樹:アンジュ 珠希:タマキ
""",
)

# Foreign residents by nationality: the homeland as a previous address, relative weight, and
# ROMAN:カナ[:通称:通称カナ] families, male and female given names ("_" is a space).
_FOREIGN_TEXTS = (
    (
        "中華人民共和国",
        35,
        "WANG:ワン:王:オウ LI:リー:李:リ ZHANG:チャン:張:チョウ LIU:リウ:劉:リュウ CHEN:チェン:陳:チン "
        "YANG:ヤン:楊:ヨウ ZHAO:チャオ:趙:チョウ HUANG:ホアン:黄:コウ ZHOU:チョウ:周:シュウ WU:ウー:呉:ゴ",
        "XIAOMING:シャオミン:小明:ショウメイ WEI:ウェイ:偉:イ JIE:ジエ:傑:ケツ HAO:ハオ:浩:コウ "
        "YONG:ヨン:勇:ユウ QIANG:チアン:強:キョウ",
        "FANG:ファン:芳:ホウ JING:ジン:静:セイ LI:リー:麗:レイ YAN:イェン:燕:エン "
        "XIAOHONG:シャオホン:小紅:ショウコウ YING:イン:英:エイ",
    ),
    (
        "大韓民国",
        20,
        "KIM:キム:金:キム LEE:イ:李:イ PARK:パク:朴:パク CHOI:チェ:崔:チェ JUNG:チョン:鄭:チョン KANG:カン:姜:カン",
        "MINJUN:ミンジュン:民俊:ミンジュン JIHOON:ジフン:志勲:ジフン HYUNWOO:ヒョンウ:賢宇:ヒョンウ "
        "SUNGHO:ソンホ:成浩:ソンホ",
        "SEOYEON:ソヨン:瑞妍:ソヨン JIYOUNG:ジヨン:智英:ジヨン MINJI:ミンジ:敏智:ミンジ HYEJIN:ヘジン:恵珍:ヘジン",
    ),
    (
        "ベトナム社会主義共和国",
        10,
        "NGUYEN:グエン TRAN:チャン LE:レ PHAM:ファム HOANG:ホアン",
        "VAN_NAM:ヴァン_ナム VAN_DUC:ヴァン_ドゥック MINH_TUAN:ミン_トゥアン QUANG_HUY:クアン_フイ",
        "THI_LAN:ティ_ラン THI_HUONG:ティ_フオン THI_MAI:ティ_マイ NGOC_ANH:ゴック_アイン",
    ),
    (
        "フィリピン共和国",
        8,
        "SANTOS:サントス REYES:レイエス CRUZ:クルス GARCIA:ガルシア",
        "JOSE:ホセ MARK:マーク JOHN_PAUL:ジョン_ポール",
        "MARIA:マリア JOY:ジョイ ANGELICA:アンジェリカ",
    ),
    (
        "アメリカ合衆国",
        15,
        "SMITH:スミス BROWN:ブラウン MILLER:ミラー JOHNSON:ジョンソン DAVIS:デイヴィス",
        "JOHN:ジョン MICHAEL:マイケル DAVID:デイヴィッド KEVIN:ケヴィン",
        "EMILY:エミリー SARAH:サラ JESSICA:ジェシカ OLIVIA:オリヴィア",
    ),
    (
        "ドイツ連邦共和国",
        12,
        "SCHMIDT:シュミット WAGNER:ヴァーグナー BECKER:ベッカー WEBER:ヴェーバー",
        "VIKTOR:ヴィクトル LUKAS:ルーカス FELIX:フェリックス",
        "SOPHIE:ゾフィー HANNAH:ハンナ LENA:レーナ",
    ),
)

# Meguro 町名: number of 丁目, postal code.
_TOWNS_TEXT = """
青葉台:4:1530042 大橋:2:1530044 上目黒:5:1530051 駒場:4:1530041 東山:3:1530043 中目黒:5:1530061
祐天寺:2:1530052 三田:2:1530062 目黒:4:1530063 下目黒:6:1530064 中町:2:1530065 五本木:3:1530053
目黒本町:6:1520002 原町:2:1520011 洗足:2:1520012 南:3:1520013 碑文谷:6:1520003 鷹番:3:1520004
中央町:2:1520001 平町:2:1520032 大岡山:2:1520033 緑が丘:3:1520034 自由が丘:3:1520035 柿の木坂:3:1520022
八雲:5:1520023 中根:2:1520031 東が丘:2:1520021
"""
_APARTMENTS = (
    "メゾン{}", "パークハウス{}", "ライオンズマンション{}", "グランドメゾン{}", "シティハウス{}",
    "{}ハイツ", "{}レジデンス", "{}コート", "{}テラス", "コーポ{}", "{}ヒルズ",
)

# Where movers-in came from: municipality code without check digit, prefix, towns.
_ELSEWHERE_TEXT = """
13101:東京都千代田区:神田神保町,麹町,九段南,飯田橋
13102:東京都中央区:月島,日本橋人形町,築地,勝どき
13103:東京都港区:芝浦,白金台,南青山,高輪
13104:東京都新宿区:西新宿,高田馬場,神楽坂,早稲田鶴巻町
13109:東京都品川区:大井,西五反田,戸越,荏原
13111:東京都大田区:田園調布,蒲田,大森北,池上
13112:東京都世田谷区:三軒茶屋,太子堂,奥沢,等々力,駒沢
13113:東京都渋谷区:恵比寿,広尾,笹塚,代々木
13120:東京都練馬区:石神井町,練馬,豊玉北
13203:東京都武蔵野市:吉祥寺本町,中町,境
14100:神奈川県横浜市:港北区日吉,青葉区美しが丘,都筑区中川,西区みなとみらい
14130:神奈川県川崎市:中原区小杉町,高津区溝口,麻生区百合丘
14204:神奈川県鎌倉市:雪ノ下,由比ガ浜,大船
11100:埼玉県さいたま市:浦和区高砂,大宮区桜木町
12100:千葉県千葉市:美浜区幕張西,中央区中央
27100:大阪府大阪市:北区梅田,天王寺区上本町,中央区本町
27140:大阪府堺市:北区中百舌鳥町,堺区熊野町東
23100:愛知県名古屋市:中区栄,千種区今池
40130:福岡県福岡市:中央区天神,博多区博多駅前,早良区百道
28100:兵庫県神戸市:中央区三宮町,東灘区岡本
04100:宮城県仙台市:青葉区一番町,宮城野区榴岡
34100:広島県広島市:中区紙屋町,南区段原
01100:北海道札幌市:中央区宮の森,豊平区平岸
47201:沖縄県那覇市:泉崎,久茂地,おもろまち
"""

# 続柄 by age group (under 18, 18–29, 30–64, 65 and over) and sex (male, female).
_RELATIONSHIPS = (
    (("子",) * 9 + ("孫",), ("子",) * 9 + ("孫",)),
    (("世帯主",) * 6 + ("子",) * 3 + ("夫",), ("世帯主",) * 5 + ("子",) * 3 + ("妻",) * 2),
    (("世帯主",) * 8 + ("夫", "子"), ("世帯主",) * 4 + ("妻",) * 5 + ("子",)),
    (("世帯主",) * 7 + ("夫",) + ("父",) * 2, ("世帯主",) * 4 + ("妻",) * 4 + ("母",) * 2),
)
_OPERATORS = tuple(f"OP{n:04d}" for n in range(101, 125))
_TERMINALS = tuple(f"TM{n:02d}" for n in range(1, 13))


class _Block(NamedTuple):
    """One 丁目 of a Meguro 町: where addresses are drawn."""

    town: str
    chome: str  # e.g. "三丁目"
    postal_code: str
    oaza_code: str
    apartments: tuple[str, ...]  # names of the buildings, after an ideographic space


class _Nationality(NamedTuple):
    """Names of one nationality; each name is (roman, kana, 通称, 通称 kana)."""

    homeland: str
    families: tuple[tuple[str, str, str, str], ...]
    males: tuple[tuple[str, str, str, str], ...]
    females: tuple[tuple[str, str, str, str], ...]


class _Calendar(NamedTuple):
    """Date strings from 1920-01-01 to ``today`` by day index, and the indices that matter."""

    dates: tuple[str, ...]
    today: int
    era_1960: int
    era_1995: int
    juki_net: int  # 2002-08-05: resident codes came into use
    foreigners: int  # 2012-07-09: foreign residents entered the register


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``漢字:カナ`` entries of a whitespace-separated table."""
    return tuple(tuple(entry.split(":")) for entry in text.split())


def _foreign_names(text: str) -> tuple[tuple[str, str, str, str], ...]:
    """``ROMAN:カナ[:通称:通称カナ]`` entries, with ``_`` as the space inside a name."""
    names = []
    for entry in text.split():
        roman, kana, alias, alias_kana = (entry.split(":") + ["", ""])[:4]
        names.append((roman.replace("_", " "), kana.replace("_", _SPACE), alias, alias_kana))
    return tuple(names)


def _weighted_surnames(surnames: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The surname table with the 20 commonest four times and the next 40 twice."""
    weights = (4 if rank < 20 else 2 if rank < 60 else 1 for rank in range(len(surnames)))
    return tuple(name for name, weight in zip(surnames, weights) for _ in range(weight))


def _blocks() -> tuple[_Block, ...]:
    """Every 丁目 of every Meguro 町, with a 7-digit 町字 code."""
    blocks = []
    for number, entry in enumerate(_TOWNS_TEXT.split(), 1):
        town, chome_count, postal_code = entry.split(":")
        apartments = tuple(_SPACE + template.format(town) for template in _APARTMENTS)
        for chome in range(1, int(chome_count) + 1):
            oaza_code = f"{number:04d}{chome:03d}"
            blocks.append(_Block(town, f"{_KANJI_DIGITS[chome - 1]}丁目", postal_code, oaza_code, apartments))
    return tuple(blocks)


def _origins() -> tuple[tuple[str, str], ...]:
    """(municipality code, address up to the 丁目) of the places movers-in came from."""
    origins = []
    for line in _ELSEWHERE_TEXT.split():
        base, prefix, towns = line.split(":")
        code = base + municipality_check_digit(base)
        for town in towns.split(","):
            origins.extend((code, f"{prefix}{town}{chome}丁目") for chome in _KANJI_DIGITS[:3])
    return tuple(origins)


def _expand(weights: tuple[int, ...]) -> tuple[int, ...]:
    """Indices repeated by weight, so that a uniform draw follows the weights."""
    return tuple(index for index, weight in enumerate(weights) for _ in range(weight))


_SURNAMES = _pairs(_SURNAMES_TEXT)
_WEIGHTED_SURNAMES = _weighted_surnames(_SURNAMES)
_GIVEN_NAMES = (tuple(map(_pairs, _MALE_TEXTS)), tuple(map(_pairs, _FEMALE_TEXTS)))
_NATIONALITIES = tuple(
    _Nationality(homeland, _foreign_names(families), _foreign_names(males), _foreign_names(females))
    for homeland, _, families, males, females in _FOREIGN_TEXTS
)
_WEIGHTED_NATIONALITIES = tuple(_NATIONALITIES[i] for i in _expand(tuple(t[1] for t in _FOREIGN_TEXTS)))
_BLOCKS = _blocks()
_ORIGINS = _origins()
_LOTS = tuple(f"{ban}番{go}号" for ban in range(1, 31) for go in range(1, 26))
_ROOMS = tuple(f"{floor}{unit:02d}号室" for floor in range(1, 13) for unit in range(1, 9))
# Every second of the 08:00–18:00 working day, as hhmmss.
_CLOCK = tuple(f"{h:02d}{m:02d}{s:02d}" for h in range(8, 18) for m in range(60) for s in range(60))
_AGE_BANDS = _expand(_AGE_WEIGHTS)
_FOREIGN_AGE_BANDS = _expand(_FOREIGN_AGE_WEIGHTS)
_PACK = struct.Struct("<qQ").pack
_WORDS = struct.Struct("<6Q").unpack
_seion = functools.cache(seion)  # tens of thousands of distinct readings, each converted once


_MILESTONES = ((1960, 1, 1), (1995, 1, 1), (2002, 8, 5), (2012, 7, 9))  # _Calendar.era_1960 … foreigners


@functools.cache
def _calendar(today: str) -> _Calendar:
    """The calendar of residents alive on ``today`` (``YYYYMMDD``)."""
    first = datetime.date(1920, 1, 1).toordinal()
    last = datetime.datetime.strptime(today, "%Y%m%d").date().toordinal()
    if last < first:
        raise ValueError("today must not be before 1920")
    dates = tuple(datetime.date.fromordinal(n).strftime("%Y%m%d") for n in range(first, last + 1))
    return _Calendar(
        dates,
        last - first,
        *(datetime.date(*ymd).toordinal() - first for ymd in _MILESTONES),
    )


@functools.cache
def _seed_offsets(seed: int) -> tuple[int, int]:
    """The additive terms of the resident-code and individual-number bijections for ``seed``."""
    digest = hashlib.blake2b(b"population-offsets:%d" % seed, digest_size=16).digest()
    return int.from_bytes(digest[:8], "little") % _RC_MOD, int.from_bytes(digest[8:], "little") % _IN_MOD


def _words(seed: int, i: int) -> tuple[int, ...]:
    """Six random 64-bit words (person, name, address, history, origin, clerk) of ``(seed, i)``."""
    return _WORDS(hashlib.blake2b(_PACK(seed, i), digest_size=48).digest())


def resident_code_of(i: int, seed: int = 1) -> str:
    """Resident ``i``'s 住民票コード, without building the record."""
    return complete_resident_code(f"{(_RC_MUL * i + _seed_offsets(seed)[0]) % _RC_MOD:010d}")


def individual_number_of(i: int, seed: int = 1) -> str:
    """Resident ``i``'s 個人番号 ("" when not yet assigned), without building the record."""
    return _individual_number(i, seed, _words(seed, i)[0] % _NUMBER_PENDING == 0)


def _individual_number(i: int, seed: int, pending: bool) -> str:
    """The 個人番号 bijection of ``i``, or "" for a newborn whose number is pending."""
    if pending:
        return ""
    return complete_individual_number(f"{(_IN_MUL * i + _seed_offsets(seed)[1]) % _IN_MOD:011d}")


def _gaiji(x: int, text: str) -> tuple[int, str]:
    """``text`` with its first character replaced by a private-use 外字."""
    x, code = divmod(x, _GAIJI_SPAN)
    return x, chr(_GAIJI_FIRST + code) + text[1:]


def _japanese_name(x: int, female: bool, era: int, adult: bool) -> tuple[str, str, int, str, str]:
    """(漢字氏名, カナ氏名, 外字数, 旧氏, 旧氏カナ) of a Japanese national."""
    x, s = divmod(x, len(_WEIGHTED_SURNAMES))
    surname, surname_kana = _WEIGHTED_SURNAMES[s]
    given_names = _GIVEN_NAMES[female][era]
    x, g = divmod(x, len(given_names))
    given, given_kana = given_names[g]
    x, r = divmod(x, 1000)
    gaiji = int(r < _NAME_GAIJI)
    if gaiji:
        x, surname = _gaiji(x, surname)
    former = former_kana = ""
    x, r = divmod(x, 1000)
    if adult and r < _FORMER_SURNAME[female]:
        f = x % len(_SURNAMES)
        if _SURNAMES[f][1] == surname_kana:
            f = (f + 1) % len(_SURNAMES)
        former, former_kana = _SURNAMES[f]
    return f"{surname}{_SPACE}{given}", f"{surname_kana}{_SPACE}{given_kana}", gaiji, former, former_kana


def _foreign_name(x: int, female: bool) -> tuple[str, str, str]:
    """(氏名 as ``本名（通称）`` or ``本名``, カナ氏名, homeland) of a foreign resident."""
    x, n = divmod(x, len(_WEIGHTED_NATIONALITIES))
    nationality = _WEIGHTED_NATIONALITIES[n]
    x, f = divmod(x, len(nationality.families))
    family, family_kana, family_alias, family_alias_kana = nationality.families[f]
    given_names = nationality.females if female else nationality.males
    x, g = divmod(x, len(given_names))
    given, given_kana, given_alias, given_alias_kana = given_names[g]
    name, kana = f"{family} {given}", f"{family_kana}{_SPACE}{given_kana}"
    if family_alias and x % 100 < _ALIAS_PERCENT:
        name += f"（{family_alias}{_SPACE}{given_alias}）"
        kana += f"（{family_alias_kana}{_SPACE}{given_alias_kana}）"
    return name, kana, nationality.homeland


def _meguro_address(x: int) -> tuple[_Block, str, int]:
    """(丁目, 住所, 外字数) of a Meguro address, about half of them in an apartment."""
    x, b = divmod(x, len(_BLOCKS))
    block = _BLOCKS[b]
    x, lot = divmod(x, len(_LOTS))
    x, r = divmod(x, 100)
    room = ""
    if r < _APARTMENT_PERCENT:
        x, a = divmod(x, len(block.apartments))
        x, number = divmod(x, len(_ROOMS))
        room = block.apartments[a] + _ROOMS[number]
    x, r = divmod(x, 1000)
    gaiji = int(r < _ADDRESS_GAIJI)
    town = block.town
    if gaiji:
        x, town = _gaiji(x, town)
    return block, f"東京都目黒区{town}{block.chome}{_LOTS[lot]}{room}", gaiji


def _origin(x: int, homeland: str) -> tuple[str, str]:
    """(市町村コード, 住所) a resident moved in from: a municipality, or abroad for half the foreigners."""
    x, r = divmod(x, 2)
    if homeland and r:
        return "", homeland
    x, o = divmod(x, len(_ORIGINS))
    code, place = _ORIGINS[o]
    return code, place + _LOTS[x % len(_LOTS)]


def _recent(x: int, today: int, earliest: int) -> tuple[int, int]:
    """A day index in ``earliest``..``today``, within a window that is usually recent."""
    x, w = divmod(x, len(_ENTRY_WINDOWS))
    x, back = divmod(x, min(today - earliest, _ENTRY_WINDOWS[w]) + 1)
    return x, today - back


def _history(x: int, today: int, birth: int, age_days: int, pending: bool) -> tuple[bool, str, int, int, int]:
    """(moved in, 異動事由, entry day, change day, notification day) of a live resident."""
    if pending:
        return False, "SHUSSEI", birth, birth, min(birth + x % 15, today)
    x, r = divmod(x, 1000)
    if r < (600 if age_days < 6 * _YEAR_DAYS else 150):
        entry_reason, entry = "SHUSSEI", birth
    else:
        entry_reason = "SHOKKEN_KISAI" if r >= 990 else "TENNYU"
        x, entry = _recent(x, today, birth)
    reason, changed = entry_reason, entry
    x, r = divmod(x, 100)
    if r < _MOVED_WITHIN_PERCENT and entry < today:
        x, changed = _recent(x, today, entry + 1)
        reason = "TENKYO"
    # An ex officio entry has no notification; residents notify within two weeks.
    notified = changed if reason == "SHOKKEN_KISAI" else min(changed + x % 15, today)
    return entry_reason == "TENNYU", reason, entry, changed, notified


def _record(i: int, seed: int, cal: _Calendar) -> IdentityRecord:
    """Resident ``i`` of the population ``seed`` as seen on ``cal``'s last day."""
    dates, today = cal.dates, cal.today
    person, name_bits, address_bits, history_bits, origin_bits, clerk_bits = _words(seed, i)
    x, r = divmod(person, _NUMBER_PENDING)
    pending = r == 0  # a newborn without a 個人番号 yet; individual_number_of repeats this test
    x, r = divmod(x, 1000)
    foreign = r < _FOREIGN
    x, r = divmod(x, 100)
    female = r < _FEMALE_PERCENT
    if pending:
        age_days = x % 30
    else:
        bands = _FOREIGN_AGE_BANDS if foreign else _AGE_BANDS
        x, band = divmod(x, len(bands))
        age_days = bands[band] * _BAND_DAYS + x % _BAND_DAYS
    birth = max(0, today - age_days)

    if foreign:
        name, kana, homeland = _foreign_name(name_bits, female)
        name_gaiji, former, former_kana = 0, "", ""
    else:
        era = 0 if birth < cal.era_1960 else 1 if birth < cal.era_1995 else 2
        adult = age_days >= 20 * _YEAR_DAYS
        name, kana, name_gaiji, former, former_kana = _japanese_name(name_bits, female, era, adult)
        homeland = ""
    block, address, address_gaiji = _meguro_address(address_bits)
    moved_in, reason, entry, changed, notified = _history(history_bits, today, birth, age_days, pending)
    previous_code, previous_address = _origin(origin_bits, homeland) if moved_in else ("", "")
    code_from = max(entry, cal.foreigners) if foreign else max(birth, cal.juki_net)

    age_group = (age_days >= 18 * _YEAR_DAYS) + (age_days >= 30 * _YEAR_DAYS) + (age_days >= 65 * _YEAR_DAYS)
    relationships = _RELATIONSHIPS[age_group][female]
    x, rel = divmod(clerk_bits, len(relationships))
    x, operator = divmod(x, len(_OPERATORS))
    x, terminal = divmod(x, len(_TERMINALS))
    stamped = min(max(notified, cal.juki_net), today)  # the CS holds nothing older than 住基ネット
    return IdentityRecord(  # positionally: keywords cost a microsecond per record
        resident_code_of(i, seed),  # resident_code
        name,  # name_kanji
        name_gaiji,  # name_gaiji_count
        kana,  # name_kana
        _seion(kana),  # name_seion_kana
        dates[birth],  # birth_date
        "2" if female else "1",  # sex
        MUNICIPALITY_CODE,  # municipality_code
        block.oaza_code,  # oaza_code
        block.postal_code,  # postal_code
        address,  # address
        address_gaiji,  # address_gaiji_count
        _individual_number(i, seed, pending),  # individual_number
        dates[entry],  # became_resident_on
        dates[changed],  # address_set_on
        dates[notified],  # notified_on
        previous_code,  # previous_municipality_code
        previous_address,  # previous_address
        0,  # previous_address_gaiji_count
        relationships[rel],  # relationship
        reason,  # change_reason
        dates[changed],  # change_date
        "",  # change_reason_detail
        "",  # former_resident_code
        dates[min(code_from, today)],  # resident_code_used_from
        "",  # request_control_number
        _OPERATORS[operator],  # operator_id
        _TERMINALS[terminal],  # terminal_id
        i + 1,  # update_sequence
        0,  # error_update_sequence
        FLAG_OFF,  # update_prohibited
        FLAG_OFF,  # scheduled_flag
        FLAG_OFF,  # exclusive_flag
        FLAG_ON if name_gaiji or address_gaiji else FLAG_OFF,  # gaiji_flag
        STATUS_LIVE,  # record_status
        dates[stamped] + _CLOCK[x % len(_CLOCK)],  # timestamp
        former,  # former_surname_kanji
        0,  # former_surname_gaiji_count
        former_kana,  # former_surname_kana
        0,  # former_surname_gaiji_seq
    )


def generate(
    count: int, *, seed: int = 1, start: int = 0, today: str = "20260401"
) -> Iterator[IdentityRecord]:
    """Residents ``start`` … ``start + count - 1`` of the population ``seed``, as of ``today``."""
    cal = _calendar(today)
    for i in range(start, start + count):
        yield _record(i, seed, cal)


# ---------------------------------------------------------------------------------------
# Small public draws for the register simulator (peers/register_stream.py): the same tables
# as the population, so that a change looks like the people it changes.

#: Operator and terminal IDs the ward's clerks use.
OPERATOR_IDS = _OPERATORS
TERMINAL_IDS = _TERMINALS


def surname(x: int) -> tuple[str, str]:
    """(漢字, カナ) of a Japanese surname drawn from ``x``, commoner names more often."""
    return _WEIGHTED_SURNAMES[x % len(_WEIGHTED_SURNAMES)]


def newborn_given_name(x: int, female: bool) -> tuple[str, str]:
    """(漢字, カナ) of a given name of the newest era (born from 1995) drawn from ``x``."""
    names = _GIVEN_NAMES[female][2]
    return names[x % len(names)]


def meguro_address(x: int) -> tuple[str, str, str, int]:
    """(大字・字コード, 郵便番号, 住所, 外字数) of a Meguro address drawn from ``x``."""
    block, address, gaiji = _meguro_address(x)
    return block.oaza_code, block.postal_code, address, gaiji


def domestic_origin(x: int) -> tuple[str, str]:
    """(市町村コード, 住所) of a place in Japan a mover-in came from, drawn from ``x``."""
    return _origin(x, "")
