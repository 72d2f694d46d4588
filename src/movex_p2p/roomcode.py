"""Room codes: random secrets of common English words, easy to read out and type.

``mx.room_code()`` draws 4 words from a list of 2048 (11 bits each: 44 bits) with the
operating system's randomness, e.g. ``"maple-orbit-quilt-ranch"``. docs/security.md says how
long a code of each size lasts against online guessing.
"""

from __future__ import annotations

import math
import random
import secrets
from typing import Final

__all__ = ["BITS_PER_WORD", "DEFAULT_WORDS", "WORDS", "room_code", "room_code_bits"]

_WORD_TEXT: Final = """
able above absent absorb access ace acid acorn acre across act active actor actual adapt add adjust
admit adopt adult advice affair afford afraid after again age agenda agent ago agree ahead aid aim air
aisle alarm album ale alert alien alley allow alloy almond almost alone alpha alpine also alter amber
among amount amp ample amused anchor angle animal ankle annual answer ant apart ape appear apple april
apron apt arc arch arctic area arena argue ark arm armed armor army aroma array arrive arrow art artist
ash aside ask aspect asset assist assume atlas atom attend attic audio august aunt auto autumn avenue
avoid awake award away awe axe axis baby back bacon badge bag bake baker ball bamboo banana band bank
banner bar barn barrel base basic basin basket bat batch bath battle bay beach bead beam bean bear beard
beast beat beauty become bed bee beef beetle before begin behave behind bell belly below belt bench
berry best bet beyond bid bike bill bin birch bird birth bit black blade blame blank blaze bleak blend
bless blind block blond bloom blouse blue blunt blur blush board boat body boil bold bolt bond bone
bonnet bonus book boost boot border boring borrow boss both bottle bottom bounce bounty bow bowl box boy
brain brake branch brand brass brave bravo bread break breath breeze brick bride bridge brief bright
bring brisk broad broken bronze brook broom brown brunch brush bubble bucket bud buddy budget buffet
build bulb bulk bull bumper bun bunch bundle bunny burger burn burrow bus bush busy butler butter button
buyer buzz cab cabin cable cactus cadet cafe cage cake calf call calm camel camera camp camper canal
candle candy cane canoe canopy canvas canyon cap cape car carbon card career cargo carpet carrot carry
cart case cash cashew casino castle casual cat catch cattle caught cause cave cavern cedar celery cell
cement census cereal chain chair chalk champ change chapel charge charm chart chase cheap check cheek
cheer cheese chef cherry chess chest chief child chill chin chip choice choir chorus chrome chunk cider
cinema circle circus citrus city civil claim clam clap class claw clay clean clerk clever click client
cliff climb clinic clip clock close closet cloth cloud clown club clue coach coal coast coat cobalt
cobra cocoa cod code coffee coin cold collar color column comb comet comic common condor consul convoy
cookie cool copper copy coral cord core corn corner corral cost cotton couch cougar count couple course
cousin cover cow cowboy coyote crab crack cradle craft crane crater crawl crayon crazy cream credit
creek crew crisp critic crop cross crowd crown cruise crumb crunch crush crust cry cub cube cue cup
curry curve custom cute cycle dad daily dairy daisy dam damp dance dancer daring dark dart dash data
date dawn day deal dealer debate debut decade decent decide deck decor deer defeat defend degree delay
delta demand den denim dense dental depth deputy derby desert design desk detail detect device dew dial
diary dice diesel diet dig digit dim dinner dip direct dirt dish disk ditch dive divert divide doctor
dog doll dollar domain donate donkey donor door dose dot double dough dove down dozen draft dragon drama
draw drawer dream dress drift drill drink drip drive drop drum dry duck duet dug dune dust duty dwarf
eager eagle ear early earn earth easel easily east easy ebb echo edge edit eel effect effort egg eight
elbow elder eleven elf elite elk elm else embark ember employ empty emu enable enamel end enemy energy
engage engine enjoy enough ensure enter entire entry envoy epic equal equip era erase erode erupt escape
essay estate ethics eve event evolve exact exam excel excess exit exotic expand expect expert expose
extend extra eye fabric face fact factor fad fade fair fairy faith falcon fall fame family famous fan
fancy far farm farmer fast father favor feast fed fee feed feel fence fern ferret ferry fiber field
fifty fig figure file film filter fin final finch find fine finger finish fir fire firm first fiscal
fish fist fit five fix flag flame flash flat flavor fleet flesh flight flint float flock flood floor
flour flower fluffy fluid flute fly foam focus fog foggy foil fold folk follow food foot forbid force
forest forget fork form formal fort forum fossil fox frame freeze fresh fridge friend frog front frost
frozen fruit fruity fry fuel fun fund funny fur future gadget galaxy gallon game gap garage garden
garlic garnet gas gate gather gauge gear gecko gel gem genius gentle ghost giant gift giggle gin ginger
girl give glad glance glass glide global globe glory glove glow glue goal goat goblin gold golden golf
good goose govern gown grab grace grade grain grand grape graph grass gravel gravy great green grid
grill grin grip groom ground group grove grow guard guess guest guide guitar gulf gum guru gust gym
habit hair half hall halt ham hamlet hammer hand handle happy harbor hard harp harsh hat haven hawk hay
hazard hazel head health heart hearty heat heavy hedge height hello helmet help hen herb hermit hero
heron hidden high hill hint hip hire hobby hockey hold hole hollow holly home honest honey hood hook hop
hope horn hornet horse host hotel hour house hover hub huge hum human humble humor hungry hunt hunter
hurdle hurry hut hybrid ice icon iconic idea idle igloo ignore image immune impact impose inch income
index indoor infant inform injury ink inlet inner input insect inside intact invest invite ion iron
island item ivory ivy jackal jacket jaguar jam jar jaw jazz jeans jelly jet jewel jig jigsaw job jockey
jog join joke jolly jot jovial joy judge jug juggle juice juicy july jump june jungle junior junk jury
just kale karate kayak keen keep keeper kennel kernel kettle key kick kid kidney kin kind king kiss kit
kite kitten kiwi knee knife knight knock knot koala lab label labor lace ladder ladle lady lagoon lake
lamb lamp land lane lap lapel laptop large laser lasso latch late latent lava law lawn lawyer lay layer
lead leaf lean learn left leg legal legend lemon lend lens lentil lesson letter level lever lid life
lift light lilac lily limb limber lime limit line linen linger lion lip liquid list listen little live
lively lizard llama load loaf loan lobby local locate lock locker lodge loft logic lonely long loop lot
lotus loud lounge love low loyal lucky lumber lunar lunch lung lyric magic magnet maid mail main major
maker mall mammal man mango manor mantle map maple marble march margin marine marker market marmot marsh
marvel mascot mask mass master mat match math matter max maze meadow meal meat medal media medium mellow
melody melon member memory menu mercy merit mesh metal meteor method midday middle mild milk mill mimic
mind minor mint minute mirror mist mitten mix mobile model modem modest module moment monday money
monkey month moon moose mop moral more morsel mosaic moss motel mother motion motor mound mount mouse
mouth move movie mud muffin mug mule muscle museum music nacho nail name nap napkin narrow nation native
nature navy near nearby neat nebula neck nectar need needle neon nephew nerve nest net never news next
nice nickel niece night nimble ninety noble nod noise nomad noodle normal north nose note notice novel
novice now nugget number nurse nut nylon oak oar oasis oat obey object ocean odd offer office offset
often oil old olive omega omelet one onion online open opera oppose option orange orb orbit orchid order
ore organ orient origin other otter ounce outer outfit outlet output oval oven owl owner oxide oxygen
oyster ozone pack pact pad paddle page pail paint pair palace palm pan panda panel pants papaya paper
parade parcel parent park parrot party pass past pasta paste patch patent path patio patrol pause paw
pay pea peace peach peak peanut pear pearl pebble pecan pedal peg pen pencil people pepper perch period
permit person pet pewter phone photo phrase piano pick pickle picnic pie piece pig pigeon pill pillow
pilot pin pinch pine pink pipe pirate pit pitch pizza place placid plain plan planet plant plate play
plaza plenty plot plucky plum plunge plus pocket pod poem poet point polar pole police polo pond pony
pool pop poppy porch port post postal poster pot potato pouch powder power praise prawn prefer press
pretty price pride prince print prism prize profit proof proper proud pub public pulse pump punch pupil
puppy purple purse push puzzle quail quarry quart queen query quest quick quiet quilt quiver quiz quote
rabbit race rack radar radio radish raft rail rain raisin rally ramp ranch random range rap rapid rare
rate raven raw ray razor reach ready real realm reason recall recess recipe record red reef reflex
reform refuge region relax relay relief remain remedy remind remote rent repair repeat reply report
rescue resist resort result retire return reveal review reward rhythm rib ribbon rice rich rid ride
ridge right rigid rim ring rinse ripple rise risk ritual rival river road roast robe robin robot rock
rocket rod rodeo role roll roof room root rope rose roster rotor rough round route row royal rubber
rubble ruby rug rule ruler run rural rush rust rustic rye saddle safe saga sail salad salmon salon salt
salute same sample sand satin sauce saucer save saw scale scarf scene scheme school scoop scope score
scout scrap screen script scroll sea seal search season seat second secret secure seed seek select
senior sense sequel series serve settle seven shade shadow shaft shape share shark sharp sheep sheet
shelf shell shield shift shine ship shirt shiver shoe shop shore short shot shovel show shower shrimp
shrub shy side sign signal silent silk silly silver simple singer sip siren sister sitar six size skate
sketch ski skill skin skirt skull sky sled sleep sleeve slice slide slim slogan slope slot slow small
smart smile smooth snack snail snake sneeze snow soap soapy sober soccer social sock soda sofa soft soil
solar solid solo son song sonic soon sort soul sound soup source south sow spa space spare spark speak
speed spell spend sphere spice spider spike spin spirit splash spoon sport spot spray spring sprout spy
square squash squid stable stack staff stage stair stamp stand star start state statue stay steady steak
steam steel stem step stereo stick still sting stock stone stool storm story stove straw stream street
strike string strong studio stuff sturdy style submit subway sugar suit sultan sum summer summit sun
sunny sunset super supply surf surge survey swamp swan sweet swift swim swing switch symbol syrup system
tab table tablet tactic tag tail tailor talent talk tan tangle tango tank tap tape target task taste tax
taxi tea teach team teapot tear tell temple ten tenant tender tennis tent term test text thank theme
thing thrive thumb ticket tide tie tiger tile timber time tin tinsel tiny tip tire title toast today toe
tofu token tomato ton tone tongue tool tooth top topaz topic torch total touch tour towel tower town toy
track trade trail train travel tray treat treaty tree trend trial tribe trick trip trophy trowel truck
true trunk trust truth tub tube tug tulip tuna tundra tunnel turkey turn turnip turtle tutor tuxedo
twelve twenty twin twist type ultra uncle under unfold union unique unit unlock until unveil upbeat
update uphill uplift upper urban urn usage useful usual vacuum valid valley value valve van vapor vast
vault velvet vendor venue verb verse vessel vet viable video view villa vine vinyl violet violin virtue
visa visit visual vital vivid vocal voice volume vote vow voyage waffle wagon waist wait walk wall
wallet walnut walrus wander warm wash wasp water wave wax way wealth web wedge week weight welder west
wet whale wheat wheel whip white whole wide widget width wife wig wild willow win wind window wing
winner winter wire wisdom wise wish wizard wok wolf woman wombat wonder wood wool word work world worm
worry worth wrap wrist write yacht yak yam yard yarn year yearly yellow yeti yoga yogurt young youth zap
zebra zen zenith zero zigzag zinc zip zipper zodiac zone zoo
"""

WORDS: Final[tuple[str, ...]] = tuple(_WORD_TEXT.split())
"""2048 distinct lowercase words of 3 to 6 letters, sorted."""

BITS_PER_WORD: Final = math.log2(len(WORDS))
"""Entropy each word of a room code adds: 11 bits."""

DEFAULT_WORDS: Final = 4
"""Words in a room code unless told otherwise: 44 bits."""


def room_code(words: int = DEFAULT_WORDS, *, rng: random.Random | None = None) -> str:
    """A new room secret: ``words`` random words joined by ``-`` (``rng`` for reproducible tests only)."""
    if isinstance(words, bool) or not isinstance(words, int) or words < 1:
        raise ValueError(f"a room code has at least one word, not {words!r}")
    choice = secrets.choice if rng is None else rng.choice
    return "-".join(choice(WORDS) for _ in range(words))


def room_code_bits(words: int = DEFAULT_WORDS) -> float:
    """The entropy of a room code of ``words`` words, in bits (44 for 4)."""
    return words * BITS_PER_WORD
