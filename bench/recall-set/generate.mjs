#!/usr/bin/env node
// Generates the labelled recall set (bench/recall-set/set.json) from a seed, so the set is
// reviewable (this file is the whole recipe) and reproducible (same seed, same bytes):
//
//   node bench/recall-set/generate.mjs            # rewrites set.json
//   node bench/recall-set/generate.mjs --check    # exits 1 if set.json is not what this file generates
//                                                 # (test/recall-set.test.ts checks the same)
//
// What it holds: synthetic users of one concierge agent, each with a multi-call history spread over
// months (turns by agent and user, a title, a summary, data-collection facts), and questions, each
// labelled with the conversation (and turn) that answers it. The questions are written the way an
// LLM following the tool's description would write a `query` (short, the distinctive words), in
// categories that say what kind of matching they need:
//
//   exact       the words of the answering turn (names, places as said)
//   paraphrase  other words for the same thing, sharing at least one content word with the turn
//   stem        another form of the turn's word (leaking/leak, booked/booking, refunded/refund)
//   number      an order, claim, code or amount as said in the call
//   name        a person's or a business's name
//   date        a date as said in the call ("March 14th"), or a month
//   fact_new    the current value of a fact that changed
//   fact_old    the value that fact had before (must come from the call that set it)
//   synonym     only other words: no word in common with the answer (keyword search misses these;
//               they are in the set on purpose, to show what a semantic channel would add)
//   cross_user  words that appear only in ANOTHER user's history: nothing may be returned from it
//               (counted as leaks, must be 0); the right answer for the asking user is "nothing"
//   no_answer   never discussed by anyone: the right answer is "nothing"
//   exclude_current  asked during a call that itself mentions the words: that call (sent as
//               `conversation_id`) must never be returned; the answer is an earlier call
//
// Everything here is invented: names, numbers and places are drawn from small pools below.
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { generator } from "../lib/text.mjs";
import { MORE_QUESTIONS, MORE_USERS } from "./more.mjs";

export const SEED = 20261201;
const OUT = new URL("./set.json", import.meta.url);

const rng = generator(SEED);
const int = (lo, hi) => lo + Math.floor(rng() * (hi - lo + 1));
const pick = (list) => list[Math.floor(rng() * list.length)];
/**
 * Draws without replacement from a pool shared by the whole set, so a name mostly belongs to one
 * user; once the pool is used up it starts again (cross-user questions check the asking user's own
 * words, so a reused name is never asked as someone else's).
 */
function drawer(list) {
  let left = [];
  return () => {
    if (left.length === 0) left = [...list];
    return left.splice(Math.floor(rng() * left.length), 1)[0];
  };
}
function shuffle(list) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// ---- pools -----------------------------------------------------------------------------------------

const FIRST = ("Amara Ben Chloe Dev Elena Farid Grace Hiro Ines Jonah Keiko Liam Maya Nikhil Olga Pablo Quinn Rosa " +
  "Sami Tara Uma Victor Wen Ximena Yusuf Zoe Aiden Bianca Carlos Dalia Emeka Freya Gustav Hana Ivan Jade " +
  "Kofi Leona Mateo Nadia Oren Priya Rafael Saoirse Tomasz Ulla Valeria Wiremu Yara Zainab Anders Beatriz Cormac " +
  "Delphine Eitan Fatima Gideon Helga Isidro Jasmin Kenji Lorenzo Mirela Niamh Osman Petra Rashid Sunniva Thiago " +
  "Ursula Vikram Wanjiru Xavier Yasmin Zoltan Agnes Bruno Cyrus Dimitri Esme Florin Greta Hamish Ilse Joaquin").split(" ");
const SURNAMES = ("Patel Okafor Nakamura Rossi Lindqvist Haddad Kowalski Mendes Abernathy Fitzgerald Oyelaran Szabo " +
  "Castellano Brennan Takahashi Moreau Adeyemi Varga Quintero Holloway Delacroix Petrenko Iwasaki Mahlangu " +
  "Sorensen Ferreira Kaplan Whitfield Nwosu Baptiste Albrecht Yilmaz Carrington Duval Ekstrom Marchetti " +
  "Ramaswamy Olsen Gallagher Achebe Strand Novak Bellamy Ibarra Lachance Prescott Zielinski Oduya Hartmann " +
  "Vasquez Lindgren Osei Kerrigan Ruiz Sandoval Tanaka Whitcombe Ansari Belmont Crowley Dervish Esposito " +
  "Fairbanks Grimaldi Huxley Ingram Jablonski Kavanagh Lombardi Mwangi Nørgaard Ogunleye Pemberton Radcliffe " +
  "Sokolov Thorne Underwood Valdivia Wakefield Xiong Yamamoto Zubair Ashworth Bergström Cho Dunmore Eriksen " +
  "Falconer Gutierrez Hollis Iqbal Jovanovic Kessler Llewellyn Mbeki Nakashima Ortega Pryce Quiroga Rutherford " +
  "Salazar Tremblay Uchenna Vukovic Winslow Yoshida Zamora Abara Blackwood Cavendish Drummond Emberly").split(" ");
const CITIES = ("Leeds Bristol Glasgow Portland Denver Austin Toronto Dublin Cardiff Sheffield Boulder Halifax " +
  "Nottingham Madison Richmond Aberdeen Savannah Tucson Brighton Oxford Boise Raleigh Exeter Norwich York " +
  "Calgary Spokane Durham Bath Asheville Reno Galway Cork Harrogate Ithaca Burlington Quebec Victoria " +
  "Swansea Chester Inverness Belfast Tacoma Eugene Omaha Lincoln Duluth Provo").split(" ");
const STREETS = ("Willow Lane,Harbour Road,Elm Street,Kingsway,Mill Road,Ashgrove Avenue,Chapel Street,Bridge Road," +
  "Orchard Close,Station Road,Maple Drive,Castle Street,Park Terrace,Riverside Walk,Queen Street,Birch Crescent," +
  "Cedar Court,High Street,Canal Street,Abbey Road,Foxglove Way,Linden Grove,Juniper Row,Hawthorn Place").split(",");
const CLINIC_WORDS = "Bright Smile,Riverside,Northgate,Oak Tree,Harbourview,Meadow,Cornerstone,Bluebell,Summit,Lakeside,Greenway,Parkside,Hillcrest,Silverbirch,Westfield".split(",");
const PRODUCTS = ("espresso machine,standing desk,air fryer,robot vacuum,noise-cancelling headphones,electric kettle," +
  "office chair,blender,smart thermostat,rowing machine,sewing machine,bread maker,dehumidifier,projector," +
  "garden hose reel,bike helmet,camping stove,weighted blanket,food processor,desk lamp,pressure cooker,tent," +
  "electric toothbrush,hair dryer,juicer,waffle maker,space heater,baby monitor,massage gun,label printer").split(",");
const PETS = "Biscuit,Pepper,Mochi,Juniper,Otis,Clementine,Rufus,Nala,Waffles,Bramble,Pickles,Ziggy,Luna,Marlowe,Tofu,Hazel,Scout,Poppy,Chester,Fig,Maple,Bruno,Indigo,Suki,Barnaby,Ginger,Olive,Kiwi,Sprout,Truffle".split(",");
const BREEDS = "beagle,labrador,border collie,dachshund,cocker spaniel,greyhound,corgi,whippet,poodle,terrier".split(",");
const CARS = "Honda Civic,Toyota Corolla,Ford Focus,Subaru Outback,Volkswagen Golf,Mazda CX-5,Kia Niro,Skoda Octavia,Nissan Leaf,Hyundai Kona,Volvo V60,Peugeot 308,Renault Clio,Tesla Model 3,Audi A3".split(",");
const GARAGES = "Crossroads Motors,Jiffy Lube Eastside,Kwik Fit Central,Northside Auto Care,Halfords Autocentre,Pit Stop Garage,Redline Service Centre,Greenlight Autos,Milestone Motors,Precision Auto Works".split(",");
const RESTAURANTS = "Osteria Lupa,The Copper Pot,Saffron House,Little Lisbon,Bistro Margaux,The Salt Loft,Kin Ramen,Casa Verde,The Olive Branch,Fennel and Fig,Harbour Grill,Lotus Garden,The Gilded Fork,Maison Bleue,Tandoor Nights,Smoke and Oak".split(",");
const MEDICATIONS = "amlodipine,metformin,atorvastatin,levothyroxine,sertraline,lisinopril,omeprazole,montelukast,cetirizine,propranolol,losartan,fluticasone".split(",");
const PHARMACIES = "Boots on the high street,the Walgreens by the station,Lloyds Pharmacy,the CVS on Main,Rite Aid Midtown,Superdrug Pharmacy,the Well Pharmacy,Rowlands Pharmacy".split(",");
const GYMS = "PureGym,Anytime Fitness,Ironworks Gym,Crunch Fitness,The Foundry,Gold's Gym,Peak Performance Club,Urban Climb".split(",");
const CLASSES = "spin,pilates,yoga,boxing,HIIT,aqua aerobics,kettlebell,barre".split(",");
const AIRLINES = "British Airways,Aer Lingus,Delta,United,Air Canada,KLM,Iberia,Alaska Airlines".split(",");
const DESTINATIONS = "Lisbon,Reykjavik,Kyoto,Marrakesh,Vancouver,Edinburgh,Barcelona,Copenhagen,Montreal,Seville,Dubrovnik,Nairobi,Porto,Vienna,Santiago,Hanoi,Oslo,Tbilisi,Valencia,Prague".split(",");
const INSURERS = "Aviva,Direct Line,State Farm,Allstate,Admiral,Geico,LV=,Churchill".split(",");
const BANKS = "Monzo,Chase,Barclays,Wells Fargo,Nationwide,Starling,HSBC,Capital One".split(",");
const DAYS = "Monday,Tuesday,Wednesday,Thursday,Friday".split(",");
const MONTHS = "January,February,March,April,May,June,July,August,September,October,November,December".split(",");
const ORDINAL = (n) => `${n}${n % 10 === 1 && n !== 11 ? "st" : n % 10 === 2 && n !== 12 ? "nd" : n % 10 === 3 && n !== 13 ? "rd" : "th"}`;

const person = { first: drawer(FIRST), surname: drawer(SURNAMES) };
const drawClinic = drawer(CLINIC_WORDS.flatMap((w) => [`${w} Dental`, `${w} Family Practice`]));
const drawProduct = drawer(PRODUCTS);
const drawPet = drawer(PETS);
const drawRestaurant = drawer([...RESTAURANTS, ...RESTAURANTS.map((r) => `${r} Kitchen`)]);
const drawDestination = drawer([...DESTINATIONS, ...DESTINATIONS.map((d) => d)]);
const usedNumbers = new Set();
/** A number of `digits` digits that no other call in the set uses. */
function uniqueNumber(digits) {
  for (;;) {
    const n = String(int(10 ** (digits - 1), 10 ** digits - 1));
    if (!usedNumbers.has(n)) {
      usedNumbers.add(n);
      return n;
    }
  }
}
const code = (letters) =>
  Array.from({ length: letters }, () => "ABCDEFGHJKLMNPQRSTUVWXYZ"[int(0, 23)]).join("") + uniqueNumber(3);

// ---- topics: one call each -------------------------------------------------------------------------
// A topic returns the call's own turns (role, text), title, summary, facts and question candidates,
// each pointing at the turn (index into `turns`) that answers it, with the words that prove it
// (`needle`: the result's text must contain them for the answer to count at turn level).

const when = (date) => `${DAYS[(date.getUTCDay() + 6) % 7] ?? "Monday"}, ${MONTHS[date.getUTCMonth()]} ${ORDINAL(date.getUTCDate())}`;
const later = (date, days) => new Date(date.getTime() + days * 86_400_000);

const TOPICS = {
  dentist(u, at, callIndex) {
    const dr = `Dr. ${person.surname()}`;
    const clinic = drawClinic();
    const street = pick(STREETS);
    const appt = later(at, int(5, 20));
    const day = `${MONTHS[appt.getUTCMonth()]} ${ORDINAL(appt.getUTCDate())}`;
    // A second dentist call replaces the first dentist: the fact changes (the issue's own example).
    const before = u.dentist;
    u.dentist = { dr, callIndex };
    const opening = before
      ? `${before.dr} is leaving the practice next month, so I need a new dentist. Can you find me someone good nearby?`
      : "One of my fillings came loose last night and my old dentist has retired. Can you find me someone good nearby?";
    const changed = before
      ? [
          { category: "fact_new", query: "current dentist name", turn: 1, needle: dr },
          { category: "fact_old", query: "previous dentist before the new one", turn: 0, needle: before.dr, also: [{ callIndex: before.callIndex, turn: 1, needle: before.dr }] },
        ]
      : [];
    return {
      title: before ? "Replacing the dentist" : "Finding a new dentist",
      summary: before
        ? `${before.dr} is leaving, so the caller needed another dentist. The agent recommended ${dr} at ${clinic} on ${street} and booked a check-up for ${day}.`
        : `The caller's filling came loose and they needed a new dentist. The agent recommended ${dr} at ${clinic} on ${street} and booked a check-up for ${day}.`,
      facts: { dentist: dr },
      changed,
      turns: [
        ["user", opening],
        ["agent", `I'd recommend ${dr} at ${clinic}, on ${street}. Patients rate them highly and they take new patients.`],
        ["user", "That sounds fine. Do they have anything soon?"],
        ["agent", `They can see you on ${when(appt)} at 10:30 in the morning for a check-up and the filling.`],
        ["user", "Perfect, book it please."],
        ["agent", `Done: ${day} at 10:30 with ${dr}. Bring your insurance card and arrive ten minutes early.`],
      ],
      qs: [
        { generic: true, category: "exact", query: "dentist recommended", turn: 1, needle: dr },
        { category: "name", query: `${dr} appointment`, turn: 5, needle: dr },
        { category: "date", query: `dentist appointment ${MONTHS[appt.getUTCMonth()]}`, turn: 5, needle: day },
        { generic: true, category: "synonym", query: "tooth doctor suggestion", turn: 1, needle: dr },
        { generic: true, category: "stem", query: "dentists recommending", turn: 1, needle: dr },
      ],
    };
  },
  plumber(u, at) {
    const who = `${person.first()} ${person.surname()}`;
    const company = `${who.split(" ")[1]} & Sons Plumbing`;
    const quote = int(8, 45) * 10;
    const day = pick(DAYS);
    return {
      title: "Leaking kitchen sink",
      summary: `The kitchen sink has been leaking under the cabinet. The agent booked ${who} from ${company} for ${day} morning; the quote is ${quote} dollars including parts.`,
      facts: {},
      turns: [
        ["user", "Water keeps leaking under my kitchen sink, the cabinet floor is soaked."],
        ["agent", "That sounds like the trap or a supply line. Shall I find a plumber for you?"],
        ["user", "Yes please, someone reliable."],
        ["agent", `I've booked ${who} from ${company}. They'll come ${day} between 9 and 11.`],
        ["user", "How much will it cost?"],
        ["agent", `They quoted ${quote} dollars including parts, and they'll call thirty minutes before arriving.`],
      ],
      qs: [
        { generic: true, category: "stem", query: "sink leaks", turn: 0, needle: "leaking" },
        { generic: true, category: "number", query: "plumber quote dollars", turn: 5, needle: String(quote) },
        { category: "name", query: `${who} plumber`, turn: 3, needle: who },
        { generic: true, category: "paraphrase", query: "who is coming to fix the kitchen sink", turn: 3, needle: who },
        { generic: true, category: "synonym", query: "pipe repair tradesman", turn: 3, needle: who },
      ],
    };
  },
  order(u, at) {
    const product = drawProduct();
    const order = uniqueNumber(5);
    const refund = int(19, 240);
    return {
      title: `Late delivery of the ${product}`,
      summary: `Order ${order} (a ${product}) was two weeks late. The agent cancelled it and refunded ${refund} pounds to the original card.`,
      facts: { last_order_id: Number(order) },
      turns: [
        ["user", `I ordered a ${product} ages ago and it still hasn't arrived. The order number is ${order}.`],
        ["agent", `I can see order ${order}. It's stuck at the depot, I'm sorry about that.`],
        ["user", "I don't want to wait any longer. Can I just get my money back?"],
        ["agent", `Of course. I've cancelled it and refunded ${refund} pounds to your original card; it shows in three to five days.`],
      ],
      qs: [
        { category: "number", query: `order ${order}`, turn: 0, needle: order },
        { category: "stem", query: `refunded ${product}`, turn: 3, needle: String(refund) },
        { category: "paraphrase", query: `how much money back for the ${product}`, turn: 3, needle: String(refund) },
        { generic: true, category: "synonym", query: "reimbursement parcel never came", turn: 3, needle: String(refund) },
      ],
    };
  },
  flight(u, at) {
    const dest = drawDestination();
    const airline = pick(AIRLINES);
    const conf = code(3);
    const fly = later(at, int(20, 60));
    const seat = `${int(8, 34)}${pick(["A", "C", "D", "F"])}`;
    const day = `${MONTHS[fly.getUTCMonth()]} ${ORDINAL(fly.getUTCDate())}`;
    return {
      title: `Flight to ${dest}`,
      summary: `The agent booked a ${airline} flight to ${dest} on ${day}, seat ${seat}, confirmation ${conf}.`,
      facts: {},
      turns: [
        ["user", `I need a flight to ${dest} for a conference, ideally a morning departure.`],
        ["agent", `There's ${/^[AEIOU]/.test(airline) ? "an" : "a"} ${airline} flight at 7:45 on ${when(fly)}. Would that work?`],
        ["user", "Yes, and I'd like an aisle seat if there is one."],
        ["agent", `Booked. Seat ${seat}, and your confirmation code is ${conf}.`],
      ],
      qs: [
        { category: "number", query: `${dest} flight confirmation code`, turn: 3, needle: conf },
        { category: "exact", query: `${airline} flight ${dest}`, turn: 0, needle: dest },
        { category: "date", query: `flight ${MONTHS[fly.getUTCMonth()]} ${fly.getUTCDate()}`, turn: 1, needle: MONTHS[fly.getUTCMonth()] },
        { generic: true, category: "synonym", query: "plane ticket reference for the conference trip", turn: 3, needle: conf },
      ],
    };
  },
  vet(u, at) {
    const pet = drawPet();
    const breed = pick(BREEDS);
    const vet = `Dr. ${person.surname()}`;
    const booster = later(at, int(10, 30));
    return {
      title: `${pet}'s vaccinations`,
      summary: `${pet}, the caller's ${breed}, is due for vaccinations. The agent booked ${vet} at the vet clinic for ${when(booster)}.`,
      facts: { pet_name: pet },
      turns: [
        ["user", `My ${breed} ${pet} is due for her vaccinations, can you book the vet?`],
        ["agent", `Of course. ${vet} has an opening on ${when(booster)} at 4pm. Shall I take it?`],
        ["user", "Yes. And remind me to bring her vaccination card."],
        ["agent", `Booked with ${vet}, and I've added a reminder about ${pet}'s card.`],
      ],
      qs: [
        { category: "name", query: `${pet} vet`, turn: 1, needle: vet },
        { category: "stem", query: `${pet} vaccination`, turn: 0, needle: pet },
        { generic: true, category: "synonym", query: "puppy jabs appointment", turn: 1, needle: vet },
      ],
    };
  },
  car(u, at) {
    const car = pick(CARS);
    const garage = pick(GARAGES);
    const miles = int(18, 140) * 1000 + int(0, 999);
    const price = int(90, 420);
    return {
      title: `${car} service`,
      summary: `The caller's ${car} (${miles.toLocaleString("en-US")} miles) needed its annual service. The agent booked ${garage}; estimate ${price} dollars.`,
      facts: { car_model: car },
      turns: [
        ["user", `My ${car} is due its annual service, it's at ${miles.toLocaleString("en-US")} miles now.`],
        ["agent", `${garage} can take it next week. The estimate for a full service with oil change is ${price} dollars.`],
        ["user", "Fine, book it and ask them to check the brakes too, they squeak."],
        ["agent", "Booked, with a note about the squeaking brakes."],
      ],
      qs: [
        { category: "exact", query: `${car} service garage`, turn: 1, needle: garage },
        { generic: true, category: "number", query: "car service estimate", turn: 1, needle: String(price) },
        { generic: true, category: "stem", query: "squeaky brake", turn: 2, needle: "brakes" },
        { generic: true, category: "synonym", query: "automobile maintenance cost", turn: 1, needle: String(price) },
      ],
    };
  },
  restaurant(u, at) {
    const place = drawRestaurant();
    const party = int(2, 8);
    const night = later(at, int(3, 14));
    const occasion = pick(["anniversary", "birthday", "retirement", "engagement"]);
    return {
      title: `Table at ${place}`,
      summary: `The agent reserved a table for ${party} at ${place} on ${when(night)} at 7:30 for the caller's ${occasion}.`,
      facts: {},
      turns: [
        ["user", `It's our ${occasion} soon, can you get us a table somewhere nice?`],
        ["agent", `${place} has a table for ${party} on ${when(night)} at 7:30. Shall I reserve it?`],
        ["user", "Yes please, and ask for somewhere quiet."],
        ["agent", `Reserved at ${place} for ${party}, with a request for a quiet corner.`],
      ],
      qs: [
        { category: "name", query: `${place}`, turn: 1, needle: place },
        { category: "stem", query: `${occasion} reservation`, turn: 3, needle: place },
        { generic: true, category: "synonym", query: "dinner booking for our special night", turn: 3, needle: place },
      ],
    };
  },
  insurance(u, at) {
    const insurer = pick(INSURERS);
    const claim = `CLM-${uniqueNumber(6)}`;
    const amount = int(6, 48) * 100;
    return {
      title: "Water damage claim",
      summary: `A washing machine hose burst and damaged the floor. The agent opened claim ${claim} with ${insurer}; the assessor estimated ${amount} pounds.`,
      facts: { insurer },
      turns: [
        ["user", "The washing machine hose burst and flooded the utility room, the floorboards are ruined."],
        ["agent", `I'm sorry. I've opened a claim with ${insurer}: the claim number is ${claim}.`],
        ["user", "Will they cover the floor?"],
        ["agent", `The assessor estimated ${amount} pounds for the floor and said it's covered, minus your excess.`],
      ],
      qs: [
        { category: "number", query: `claim ${claim}`, turn: 1, needle: claim },
        { generic: true, category: "paraphrase", query: "insurance claim number flooded floor", turn: 1, needle: claim },
        { generic: true, category: "synonym", query: "how much will the policy pay", turn: 3, needle: String(amount) },
      ],
    };
  },
  pharmacy(u, at) {
    const med = pick(MEDICATIONS);
    const shop = pick(PHARMACIES);
    const dose = pick(["5 mg", "10 mg", "20 mg", "50 mg"]);
    return {
      title: "Prescription refill",
      summary: `The agent arranged a refill of ${med} ${dose} at ${shop}, ready for pickup the next afternoon.`,
      facts: { medication: med },
      turns: [
        ["user", `I'm nearly out of my ${med}, can you sort out a refill?`],
        ["agent", `I've sent the refill of ${med} ${dose} to ${shop}. It'll be ready tomorrow afternoon.`],
        ["user", "Great, thanks."],
      ],
      qs: [
        { category: "exact", query: `${med} refill`, turn: 1, needle: shop },
        { generic: true, category: "synonym", query: "pick up my medicine where", turn: 1, needle: shop },
      ],
    };
  },
  gym(u, at) {
    const gym = pick(GYMS);
    const trainer = `${person.first()}`;
    const klass = pick(CLASSES);
    const day = pick(DAYS);
    return {
      title: `Joining ${gym}`,
      summary: `The caller joined ${gym}; first ${klass} class on ${day}s with the trainer ${trainer}.`,
      facts: { gym },
      turns: [
        ["user", "I want to get back into exercise. Is there a gym near me with classes?"],
        ["agent", `${gym} is ten minutes away. They run ${klass} on ${day} evenings with a trainer called ${trainer}.`],
        ["user", `Sign me up for the ${klass} class.`],
        ["agent", `You're signed up for ${klass} on ${day}s with ${trainer}.`],
      ],
      qs: [
        { category: "name", query: `${klass} class trainer`, turn: 1, needle: trainer },
        { category: "paraphrase", query: `which evening is ${klass}`, turn: 1, needle: day },
        { generic: true, category: "synonym", query: "workout instructor name", turn: 1, needle: trainer },
      ],
    };
  },
  bank(u, at) {
    const bank = pick(BANKS);
    const last4 = uniqueNumber(4);
    return {
      title: "Lost debit card",
      summary: `The caller lost their ${bank} debit card ending ${last4}. The agent froze it and ordered a replacement, arriving in five working days.`,
      facts: { bank },
      turns: [
        ["user", `I think I lost my ${bank} debit card, the one ending in ${last4}.`],
        ["agent", `I've frozen the card ending ${last4} so nobody can use it, and ordered a replacement.`],
        ["user", "When will the new one arrive?"],
        ["agent", "Within five working days, to your home address."],
      ],
      qs: [
        { category: "number", query: `card ending ${last4}`, turn: 1, needle: last4 },
        { generic: true, category: "stem", query: "frozen cards replacement", turn: 1, needle: last4 },
        { generic: true, category: "synonym", query: "misplaced wallet plastic", turn: 0, needle: last4 },
      ],
    };
  },
};

// Check-in calls: the caller mentions errands in passing, with none of their details. They hold no
// answers; they are there because real histories have them, and they compete with the answering call
// for every generic question ("dentist recommended" also matches "I keep putting off the dentist").
const IN_PASSING = {
  dentist: "I keep putting off the dentist, that tooth still aches a bit.",
  plumber: "The kitchen sink is acting up again, I may need a plumber at some point.",
  order: "I might order another one of those online, I haven't decided.",
  flight: "We're thinking about a flight somewhere warm next year.",
  vet: "The dog has been very lazy lately, nothing for the vet yet.",
  car: "The car makes a noise on cold mornings, I'll mention it at the next service.",
  restaurant: "We had a lovely dinner out last weekend, no table needed this time.",
  insurance: "I should check what my insurance policy actually covers.",
  pharmacy: "Remind me to ask the doctor about my prescription next time.",
  gym: "I skipped my class at the gym this week, too tired.",
  bank: "My bank app keeps logging me out, so annoying.",
};
function checkIn(mentions) {
  const [a, b] = mentions;
  return {
    title: "Quick check-in",
    summary: `The caller checked in with nothing urgent; they mentioned ${a} and ${b} in passing.`,
    facts: {},
    turns: [
      ["user", "Nothing urgent today, just checking in."],
      ["agent", "Always nice to hear from you. How have things been?"],
      ["user", IN_PASSING[a]],
      ["agent", "Noted. Shall I do anything about it now?"],
      ["user", `Not yet, thanks. ${IN_PASSING[b]}`],
      ["agent", "Understood, just let me know when you'd like me to sort it out."],
    ],
    qs: [],
  };
}

// ---- users and their histories ---------------------------------------------------------------------

const USERS = 32;
const CALLS_MIN = 6;
const CALLS_MAX = 9;
const START = Date.UTC(2026, 2, 2, 9, 0, 0); // 2026-03-02
const END = Date.UTC(2026, 10, 20, 18, 0, 0); // 2026-11-20
const AGENT_ID = "agent_01jrecall0concierge0000000";

const GREETINGS = ["Hi, it's your Harbor concierge. What can I do for you today?", "Hello again! How can I help?", "Good to hear from you. What's on your list today?"];
const SMALLTALK = [
  ["user", "Sorry, it's been a hectic week."],
  ["agent", "No problem at all, take your time."],
  ["user", "Hang on, let me grab a pen."],
  ["agent", "Sure, I'll wait."],
  ["user", "The weather has been awful here lately."],
  ["agent", "I hope it clears up for the weekend."],
];
const CLOSINGS = [
  ["user", "That's everything, thank you."],
  ["agent", "You're welcome. I'll send a summary by text. Have a good day!"],
];

function userHistory(index) {
  const first = person.first();
  const userId = `usr_${String(index + 1).padStart(3, "0")}_${first.toLowerCase()}`;
  const u = { userId, name: `${first} ${person.surname()}`, facts: {} };
  const CHECK_INS = 2;
  const errands = int(CALLS_MIN, CALLS_MAX);
  const nCalls = errands + CHECK_INS;
  // Everyone moves house once (a fact that changes). The other calls' errands: distinct ones, plus one
  // or two done twice (another order, another flight, a second dentist), so a question has to pick
  // the right one of two similar calls; every other user replaces their dentist.
  const repeats = int(1, 2);
  const dentists = index % 2 === 0 ? 2 : 0;
  const extra = dentists ? repeats - 1 : repeats;
  const pool = Object.keys(TOPICS).filter((k) => !(dentists && k === "dentist"));
  const distinct = shuffle(pool).slice(0, errands - 1 - dentists - extra);
  const twice = [...Array(dentists).fill("dentist"), ...shuffle(distinct.filter((k) => k !== "dentist")).slice(0, extra)];
  const topics = shuffle([...distinct, ...twice]);
  if (topics.length !== errands - 1) throw new Error(`user ${index}: ${topics.length} topics for ${errands - 1} errands`);
  // Where the check-ins go (never first: the first call says where the caller lives).
  const checkInAt = new Set(shuffle(Array.from({ length: nCalls - 1 }, (_, i) => i + 1)).slice(0, CHECK_INS));
  let movingAt = int(1, nCalls - 1); // never the first call: the first call states the old city
  while (checkInAt.has(movingAt)) movingAt = int(1, nCalls - 1);
  const times = Array.from({ length: nCalls }, () => int(START, END)).sort((a, b) => a - b);
  const oldCity = pick(CITIES);
  let newCity = pick(CITIES);
  while (newCity === oldCity) newCity = pick(CITIES);
  const oldStreet = pick(STREETS);
  const newStreet = pick(STREETS.filter((s) => s !== oldStreet));
  const calls = [];
  let topicIndex = 0;
  let topic = null;
  for (let c = 0; c < nCalls; c++) {
    const at = new Date(Math.floor(times[c] / 1000) * 1000);
    let t;
    if (checkInAt.has(c)) {
      topic = "check-in";
      t = checkIn(shuffle(topics.filter((k) => k in IN_PASSING).concat(["car", "bank"])).slice(0, 2));
    } else if (c === movingAt) {
      topic = "moving";
      t = {
        title: `Moving to ${newCity}`,
        summary: `The caller is moving from ${oldCity} to ${newCity} (${int(2, 90)} ${newStreet}). The agent updated their address and set up mail forwarding.`,
        facts: { home_city: newCity },
        turns: [
          ["user", `Big news: we're moving from ${oldCity} to ${newCity} at the end of the month.`],
          ["agent", `Congratulations! What's the new address in ${newCity}?`],
          ["user", `It's on ${newStreet}. Can you update my address everywhere and forward my mail?`],
          ["agent", `Done: your address is now ${newStreet}, ${newCity}, and mail forwarding from ${oldCity} starts on the 1st.`],
        ],
        qs: [
          { category: "fact_new", query: "current home city", turn: 3, needle: newCity },
          { category: "stem", query: "moved address update", turn: 3, needle: newStreet },
        ],
        moving: true,
      };
    } else {
      topic = topics[topicIndex++];
      t = TOPICS[topic](u, at, c);
    }
    // The first call also says where the caller lives (the fact that changes later).
    const facts = { ...t.facts };
    const turns = [["agent", pick(GREETINGS)]];
    let offset = 1;
    if (c === 0) {
      turns.push(["user", `Hi, it's ${u.name.split(" ")[0]}. I'm calling from home in ${oldCity}, ${oldStreet}.`]);
      turns.push(["agent", `Thanks ${u.name.split(" ")[0]}, I have you in ${oldCity}.`]);
      facts.home_city = oldCity;
      facts.preferred_name = u.name.split(" ")[0];
      offset = 3;
    }
    const small = rng() < 0.6 ? int(0, 2) : -1;
    const body = [...t.turns];
    // Small talk goes before one of the caller's turns (never the first), as people drift mid-call.
    const userTurns = body.map(([role], i) => (role === "user" && i > 0 ? i : -1)).filter((i) => i > 0);
    if (small >= 0 && userTurns.length > 0) body.splice(pick(userTurns), 0, SMALLTALK[small * 2], SMALLTALK[small * 2 + 1]);
    // Re-point the question turns after the smalltalk insertion.
    const shift = (turn) => {
      const msg = t.turns[turn][1];
      return offset + body.findIndex(([, m]) => m === msg);
    };
    turns.push(...body, ...CLOSINGS);
    const convId = `conv_recall_${String(index + 1).padStart(3, "0")}_${String(c + 1).padStart(2, "0")}`;
    calls.push({
      conversation_id: convId,
      started_at: at.toISOString(),
      duration_secs: 60 + turns.length * int(12, 25),
      title: t.title,
      summary: t.summary,
      facts,
      turns: turns.map(([role, message]) => ({ role, message })),
      topic,
      qs: t.qs.map((q, qi) => ({ ...q, qi, turn: shift(q.turn) })),
      // Questions about a value this call changed; `also`: earlier calls that answer too.
      changed: (t.changed ?? []).map(({ also, ...q }) => ({
        ...q,
        turn: shift(q.turn),
        // The earlier call's turn: the first one that says the value.
        also: (also ?? []).map((a) => ({
          conversation_id: calls[a.callIndex].conversation_id,
          turn: calls[a.callIndex].turns.findIndex((x) => x.message.includes(a.needle)),
          needle: a.needle,
        })),
      })),
      moving: t.moving === true,
      firstCall: c === 0,
    });
  }
  return { ...u, oldCity, newCity, oldStreet, calls };
}

const users = Array.from({ length: USERS }, (_, i) => userHistory(i));

// ---- questions -------------------------------------------------------------------------------------

const textOf = (u) => u.calls.flatMap((c) => [c.title, c.summary, ...c.turns.map((t) => t.message), ...Object.values(c.facts).map(String)]).join("\n");
const words = (s) => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
const STOP = new Set("a an the my me i is was for to of on at in and or with what who which when where how did do our your it its by from".split(" "));
const contentWords = (s) => words(s).filter((w) => !STOP.has(w));

const questions = [];
const picked = {};
let qn = 0;
const add = (q) => questions.push({ id: `q${String(++qn).padStart(3, "0")}`, ...q });
const NO_ANSWER = [
  "passport renewal appointment",
  "wedding photographer booking",
  "piano lessons teacher",
  "boiler annual inspection",
  "tax return accountant",
  "kayak rental weekend",
  "chimney sweep visit",
  "school parents evening",
];

for (const [ui, u] of users.entries()) {
  const pickQs = [];
  for (const call of u.calls) {
    if (call.moving) continue;
    // Two questions per topic call, the least represented categories first, so every category is
    // well covered; synonyms weigh triple so that they stay a minority (they are the honest misses,
    // not the bulk of what an agent asks).
    const weight = (q) => (picked[q.category] ?? 0) * (q.category === "synonym" ? 3 : 1) + rng();
    const qs = call.qs.map((q) => ({ q, w: weight(q) })).sort((a, b) => a.w - b.w).map(({ q }) => q);
    for (const q of qs.slice(0, 2)) {
      picked[q.category] = (picked[q.category] ?? 0) + 1;
      pickQs.push({ q, call });
    }
  }
  for (const { q, call } of pickQs) {
    // A generic question ("plumber quote dollars") names nothing that tells two calls of the same
    // errand apart: each of them answers it (with its own value), as an agent would read both.
    const answering = q.generic ? u.calls.filter((c) => c.topic === call.topic) : [call];
    const answers = answering.map((c) => {
      const cq = c.qs.find((x) => x.qi === q.qi);
      return { conversation_id: c.conversation_id, turn: cq.turn, needle: cq.needle };
    });
    // The same generic question picked from both calls of an errand is asked once.
    if (questions.some((x) => x.user_id === u.userId && x.query === q.query)) continue;
    add({ user_id: u.userId, category: q.category, query: q.query, conversation_id: null, answers });
  }
  for (const call of u.calls) {
    for (const q of call.changed) {
      add({ user_id: u.userId, category: q.category, query: q.query, conversation_id: null, answers: [{ conversation_id: call.conversation_id, turn: q.turn, needle: q.needle }, ...q.also] });
    }
  }
  // The fact that changed: the new value from the moving call, the old one from the first call.
  const first = u.calls[0];
  const moving = u.calls.find((c) => c.moving);
  const mq = moving.qs.find((q) => q.category === "fact_new");
  add({ user_id: u.userId, category: "fact_new", query: mq.query, conversation_id: null, answers: [{ conversation_id: moving.conversation_id, turn: mq.turn, needle: u.newCity }] });
  add({
    user_id: u.userId,
    category: "fact_old",
    query: ui % 2 === 0 ? "previous home city before moving" : `where did I live before ${u.newCity}`,
    conversation_id: null,
    answers: [
      { conversation_id: first.conversation_id, turn: 1, needle: u.oldCity },
      // The moving call also names the old city ("moving from X"): it answers too.
      { conversation_id: moving.conversation_id, turn: moving.turns.findIndex((t) => t.message.includes(`from ${u.oldCity}`)), needle: u.oldCity },
    ],
  });
  // Asked during the moving call itself (sent as conversation_id): that call must not come back,
  // and the first call (where the old street was said) is the answer.
  add({
    user_id: u.userId,
    category: "exclude_current",
    query: `old address ${u.oldStreet} ${u.oldCity}`,
    conversation_id: moving.conversation_id,
    answers: [{ conversation_id: first.conversation_id, turn: 1, needle: u.oldStreet }],
  });
  // Words from another user's history only: nothing of theirs may come back.
  const other = users[(ui + 7) % users.length];
  const mine = new Set(contentWords(textOf(u)));
  const candidates = other.calls
    .flatMap((c) => c.qs.filter((q) => ["name", "number"].includes(q.category)).map((q) => q.needle))
    .filter((needle) => contentWords(needle).length > 0 && contentWords(needle).every((w) => !mine.has(w)));
  if (candidates.length > 0) {
    add({ user_id: u.userId, category: "cross_user", query: pick(candidates), conversation_id: null, answers: [], other_user_id: other.userId });
  }
  if (ui % 4 === 0) add({ user_id: u.userId, category: "no_answer", query: NO_ANSWER[(ui / 4) % NO_ANSWER.length], conversation_id: null, answers: [] });
}

// ---- the second part (more.mjs, issue 21): appended, so everything above stays as it was -----------

const rng2 = generator(SEED + 21);
const stem5 = (w) => w.replace(/(?:ing|ed|es|s)$/, "").slice(0, 5);
const callStems = (c) => new Set(contentWords([c.title, c.summary, ...c.turns.map((t) => t.message), ...Object.values(c.facts).map(String)].join("\n")).map(stem5));
/** A synonym question shares nothing with any answering call; a paraphrase shares a word with each. */
function fits(category, query, calls) {
  const q = contentWords(query).map(stem5);
  if (category === "synonym") return calls.every((c) => !q.some((w) => callStems(c).has(w)));
  return calls.every((c) => q.some((w) => callStems(c).has(w)));
}
for (const u of users) {
  // One more question per errand the user had, a synonym or a paraphrase by turns.
  const topics = [...new Set(u.calls.map((c) => c.topic))].filter((t) => t in MORE_QUESTIONS);
  for (const topic of topics) {
    const answering = u.calls.filter((c) => c.topic === topic);
    const wanted = rng2() < 0.5 ? "synonym" : "paraphrase";
    const candidates = MORE_QUESTIONS[topic].filter((q) => q.category === wanted && fits(q.category, q.query, answering));
    if (candidates.length === 0) continue;
    const q = candidates[Math.floor(rng2() * candidates.length)];
    const answers = answering.map((c) => {
      const cq = c.qs.find((x) => x.qi === q.like);
      return { conversation_id: c.conversation_id, turn: cq.turn, needle: cq.needle };
    });
    add({ user_id: u.userId, category: q.category, query: q.query, conversation_id: null, answers });
  }
}
for (const m of MORE_USERS) {
  const calls = m.calls.map(({ qs, turns, ...c }) => ({ ...c, duration_secs: 60 + turns.length * 15, turns: turns.map(([role, message]) => ({ role, message })) }));
  users.push({ userId: m.user_id, name: m.name, calls });
  for (const [ci, c] of m.calls.entries()) {
    for (const q of c.qs) {
      if (!c.turns[q.turn][1].includes(q.needle)) throw new Error(`${c.conversation_id}: turn ${q.turn} lacks ${q.needle}`);
      if ((q.category === "synonym" || q.category === "paraphrase") && !fits(q.category, q.query, [calls[ci]])) throw new Error(`${q.query}: not a ${q.category} of ${c.conversation_id}`);
      add({ user_id: m.user_id, category: q.category, query: q.query, conversation_id: null, answers: [{ conversation_id: c.conversation_id, turn: q.turn, needle: q.needle }] });
    }
  }
}

// ---- output ----------------------------------------------------------------------------------------

const set = {
  schema: "postcall-recall-set/1",
  seed: SEED,
  generator: "bench/recall-set/generate.mjs",
  agent: { agent_id: AGENT_ID, agent_name: "Harbor Concierge" },
  categories: {
    answerable: ["exact", "paraphrase", "stem", "number", "name", "date", "fact_new", "fact_old", "exclude_current", "synonym"],
    empty: ["cross_user", "no_answer"],
  },
  users: users.map((u) => ({
    user_id: u.userId,
    name: u.name,
    calls: u.calls.map(({ qs, changed, moving, firstCall, topic, ...c }) => c),
  })),
  questions,
};

// One line per turn, per answer and per question header, so a diff of the set reads like the set.
export const json = `${JSON.stringify(set, null, 1)
  .replace(/\{\n\s*("role": "[a-z]+"),\n\s*("message": "(?:[^"\\]|\\.)*")\n\s*\}/g, "{ $1, $2 }")
  .replace(/\{\n\s*("conversation_id": "[^"]+"),\n\s*("turn": -?\d+),\n\s*("needle": "(?:[^"\\]|\\.)*")\n\s*\}/g, "{ $1, $2, $3 }")}\n`;
// Run as a script: write or check. Imported (test/global/recall-set-check.mjs): just `json`.
const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (!main) {
  // imported: nothing to do
} else if (process.argv.includes("--check")) {
  const now = readFileSync(OUT, "utf8");
  if (now !== json) {
    console.error("bench/recall-set/set.json differs from what generate.mjs produces: run node bench/recall-set/generate.mjs");
    process.exit(1);
  }
  console.log("set.json is up to date");
} else {
  writeFileSync(OUT, json);
  const byCat = {};
  for (const q of questions) byCat[q.category] = (byCat[q.category] ?? 0) + 1;
  console.log(`wrote ${OUT.pathname}: ${users.length} users, ${users.reduce((n, u) => n + u.calls.length, 0)} calls, ${questions.length} questions`, byCat);
}
