// The second part of the labelled recall set (issue 21), added to what generate.mjs made without
// changing it (the first 553 questions stay as they were, so old and new figures compare):
//
// 1. More `synonym` and `paraphrase` questions for the template calls, written the way a caller says
//    it or an LLM condenses it ("who is going to look at my teeth"), by hand, NOT from WordNet's lists
//    (recall's expansion table is built from those; a set written from them would measure the table,
//    not the tool). `like` names the template question (TOPICS[topic].qs index) whose turn and needle
//    answer it. generate.mjs keeps a synonym question only where it shares no word, nor a word's first
//    five letters, with any call that answers it, and a paraphrase only where it shares at least one.
// 2. A handful of calls written as people talk (hesitations, slang, corrections, several things in
//    one turn), for three more users, with their questions: the templates' English is tidier than a
//    real call's, and these show whether the figures hold on the untidy kind.
export const MORE_QUESTIONS = {
  dentist: [
    { category: "synonym", query: "who is going to look at my teeth", like: 0 },
    { category: "synonym", query: "cavity repair practitioner", like: 0 },
    { category: "synonym", query: "orthodontist recommendation", like: 0 },
    { category: "paraphrase", query: "which dentist did you suggest", like: 0 },
    { category: "paraphrase", query: "when is my dentist check-up", like: 2 },
  ],
  plumber: [
    { category: "synonym", query: "faucet repairman", like: 4 },
    { category: "synonym", query: "handyman for the drip", like: 4 },
    { category: "paraphrase", query: "what did the plumber quote", like: 1 },
    { category: "paraphrase", query: "when is the plumber coming", like: 2 },
  ],
  order: [
    { category: "synonym", query: "shipment that never turned up", like: 3 },
    { category: "synonym", query: "compensation for the missing package", like: 3 },
    { category: "paraphrase", query: "did I get my money back for the late order", like: 2 },
    { category: "paraphrase", query: "refund amount for the late delivery", like: 2 },
  ],
  flight: [
    { category: "synonym", query: "reservation number for my business travel", like: 3 },
    { category: "synonym", query: "airplane trip reference", like: 3 },
    { category: "paraphrase", query: "what seat did I get on the flight", like: 0 },
    { category: "paraphrase", query: "conference flight departure time", like: 2 },
  ],
  vet: [
    { category: "synonym", query: "animal doctor visit", like: 2 },
    { category: "synonym", query: "shots for the puppy", like: 2 },
    { category: "synonym", query: "immunisation appointment for my pet", like: 2 },
    { category: "paraphrase", query: "which vet did you book", like: 0 },
  ],
  car: [
    { category: "synonym", query: "what will the mechanic charge", like: 3 },
    { category: "synonym", query: "vehicle tune-up quote", like: 3 },
    { category: "paraphrase", query: "how much is the car service", like: 1 },
    { category: "paraphrase", query: "what did they say about the brakes", like: 2 },
  ],
  restaurant: [
    { category: "synonym", query: "where are we eating for the celebration", like: 2 },
    { category: "synonym", query: "dinner plans for the big day", like: 2 },
    { category: "paraphrase", query: "which restaurant table did you reserve", like: 2 },
    { category: "paraphrase", query: "quiet table booking", like: 2 },
  ],
  insurance: [
    { category: "synonym", query: "insurance payout for the laundry leak", like: 2 },
    { category: "synonym", query: "compensation figure for the wet boards", like: 2 },
    { category: "paraphrase", query: "water damage claim payout", like: 2 },
    { category: "paraphrase", query: "how much for the ruined floor", like: 2 },
  ],
  pharmacy: [
    { category: "synonym", query: "chemist where my tablets are waiting", like: 1 },
    { category: "synonym", query: "which drugstore has my medication", like: 1 },
    { category: "synonym", query: "where do I collect my pills", like: 1 },
    { category: "paraphrase", query: "where is my refill ready", like: 0 },
  ],
  gym: [
    { category: "synonym", query: "who coaches my workout session", like: 2 },
    { category: "synonym", query: "fitness coach name", like: 2 },
    { category: "paraphrase", query: "name of the gym trainer", like: 0 },
    { category: "paraphrase", query: "what day is my class", like: 1 },
  ],
  bank: [
    { category: "synonym", query: "stolen visa got blocked", like: 1 },
    { category: "synonym", query: "missing payment plastic", like: 2 },
    { category: "paraphrase", query: "lost card replacement arriving", like: 0 },
    { category: "paraphrase", query: "when does the replacement card come", like: 0 },
  ],
};

const G = "Hi, it's your Harbor concierge. What can I do for you today?";
const BYE = [["user", "That's everything, thank you."], ["agent", "You're welcome. Have a good day!"]];

/** Users whose calls are written as people talk. Each question's `turn` indexes the call's turns, greeting first. */
export const MORE_USERS = [
  {
    user_id: "usr_033_marisol",
    name: "Marisol Achterberg",
    calls: [
      {
        conversation_id: "conv_recall_033_01",
        started_at: "2026-04-14T08:12:00.000Z",
        title: "Taxi for mum's hip operation",
        summary: "The caller's mother has hip surgery at St Luke's on the 22nd. The agent booked an accessible minicab with Castle Cars for 6:15 from 14 Larkspur Road, reference CC-4471; her brother brings her home.",
        facts: {},
        turns: [
          ["agent", G],
          ["user", "Hiya, um, so my mum's having her hip done on the twenty-second and I need to get her to St Luke's for seven in the morning, which is, yeah, early."],
          ["agent", "Oh, I hope it goes well for her. I can book a cab for the twenty-second. Where should it pick her up?"],
          ["user", "From hers, that's 14 Larkspur Road. And she's got a walking frame so it needs to be one of the bigger ones, an estate or a van or whatever."],
          ["agent", "Got it. I've booked an accessible minicab with Castle Cars for 6:15 on Wednesday the 22nd from 14 Larkspur Road to St Luke's. The booking reference is CC-4471."],
          ["user", "Brilliant, cheers. Oh and can they wait, no, actually never mind, my brother's bringing her home."],
          ["agent", "No problem. I'll text you the reference now."],
          ...BYE,
        ],
        qs: [
          { category: "number", query: "CC-4471", turn: 4, needle: "CC-4471" },
          { category: "paraphrase", query: "taxi for the hospital trip", turn: 4, needle: "Castle Cars" },
          { category: "synonym", query: "transport for the joint replacement", turn: 4, needle: "Castle Cars" },
          { category: "synonym", query: "what time is the pickup for the procedure", turn: 4, needle: "6:15" },
        ],
      },
      {
        conversation_id: "conv_recall_033_02",
        started_at: "2026-06-03T18:40:00.000Z",
        title: "Broadband keeps dropping",
        summary: "The caller's broadband drops out every evening (orange light on the router). The agent raised fault VB-220918 with Vireo Broadband; an engineer comes Friday the 5th, 8 to 1.",
        facts: {},
        turns: [
          ["agent", G],
          ["user", "Right, so the internet's been dropping out every evening for like a week, it's driving me mad, I work from home."],
          ["agent", "That sounds frustrating. Is it the Wi-Fi or the whole connection?"],
          ["user", "The whole thing, the little light on the router goes orange. I've turned it off and on again, obviously."],
          ["agent", "I've raised a fault with Vireo Broadband. An engineer is booked for Friday the 5th between 8 and 1, and the fault number is VB-220918."],
          ["user", "Between eight and one, of course it is. Fine."],
          ["agent", "I'll remind you on Thursday evening."],
          ...BYE,
        ],
        qs: [
          { category: "number", query: "fault VB-220918", turn: 4, needle: "VB-220918" },
          { category: "paraphrase", query: "when is the broadband engineer coming", turn: 4, needle: "Friday the 5th" },
          { category: "synonym", query: "online service outage repairman", turn: 4, needle: "VB-220918" },
        ],
      },
      {
        conversation_id: "conv_recall_033_03",
        started_at: "2026-09-09T10:20:00.000Z",
        title: "Mum's physio sessions",
        summary: "The caller's mother needs physiotherapy after her hip operation. The agent booked six sessions with Anna Brightwell at Larkspur Physio, Mondays at 11, starting the 14th; 45 pounds each.",
        facts: {},
        turns: [
          ["agent", G],
          ["user", "Me again. So mum's hip's healing, but the hospital says she needs physio, and honestly the NHS waiting list is, well, you know."],
          ["agent", "Glad she's on the mend. Larkspur Physio is a five-minute walk from her house. Anna Brightwell there does post-surgery rehab."],
          ["user", "Oh that's handy, she can't do stairs though, is it ground floor?"],
          ["agent", "It's all ground floor. I've booked six sessions with Anna on Mondays at 11, starting the 14th, 45 pounds a session."],
          ["user", "Perfect. She'll moan about it but she'll go."],
          ...BYE,
        ],
        qs: [
          { category: "name", query: "Anna Brightwell", turn: 2, needle: "Anna Brightwell" },
          { category: "paraphrase", query: "when are mum's physio sessions", turn: 4, needle: "Mondays at 11" },
          { category: "synonym", query: "recovery exercises specialist for the old lady", turn: 2, needle: "Anna Brightwell" },
        ],
      },
    ],
  },
  {
    user_id: "usr_034_desmond",
    name: "Desmond Okonjo",
    calls: [
      {
        conversation_id: "conv_recall_034_01",
        started_at: "2026-05-11T12:05:00.000Z",
        title: "Theo's seventh birthday party",
        summary: "Theo turns seven; the agent held a party at Bounce Republic in Halden on Saturday the 30th at 2pm for 15 children (18 pounds each), deposit 50 pounds due by Friday.",
        facts: {},
        turns: [
          ["agent", G],
          ["user", "Hey. So Theo turns seven in three weeks and he's decided, he's very decided, he wants a trampoline party."],
          ["agent", "Seven, lovely. Bounce Republic in Halden has party packages on Saturdays: ninety minutes of jumping and a room for food, 18 pounds a child."],
          ["user", "That's the one his mate had. How many kids can you do?"],
          ["agent", "Up to twenty. I've held Saturday the 30th at 2pm for 15 children under the name Okonjo, deposit 50 pounds due by Friday."],
          ["user", "Go on then. Fifteen feral children. What could go wrong."],
          ...BYE,
        ],
        qs: [
          { category: "name", query: "Bounce Republic", turn: 2, needle: "Bounce Republic" },
          { category: "paraphrase", query: "how much is the party deposit", turn: 4, needle: "50 pounds" },
          { category: "synonym", query: "venue for the youngster bash", turn: 2, needle: "Bounce Republic" },
          { category: "synonym", query: "celebration booking for my boy", turn: 4, needle: "Saturday the 30th" },
        ],
      },
      {
        conversation_id: "conv_recall_034_02",
        started_at: "2026-07-21T09:30:00.000Z",
        title: "Fence panel blown down",
        summary: "Two fence panels blew down in the storm. The agent booked Greaves Fencing to replace them on Tuesday; 240 pounds for two panels and a post.",
        facts: {},
        turns: [
          ["agent", G],
          ["user", "Morning. The storm last night took out two of the fence panels at the back, the neighbour's dog keeps wandering in."],
          ["agent", "What a night. Are the posts still standing?"],
          ["user", "One's snapped clean off at the bottom, the other looks okay-ish."],
          ["agent", "Greaves Fencing can come Tuesday to put up two new panels and replace the broken post, 240 pounds all in."],
          ["user", "Yeah book them, the dog's eaten half my tomatoes already."],
          ...BYE,
        ],
        qs: [
          { category: "exact", query: "Greaves Fencing", turn: 4, needle: "Greaves Fencing" },
          { category: "paraphrase", query: "cost to fix the fence", turn: 4, needle: "240 pounds" },
          { category: "synonym", query: "garden barrier wind damage repair price", turn: 4, needle: "240 pounds" },
        ],
      },
      {
        conversation_id: "conv_recall_034_03",
        started_at: "2026-10-28T19:45:00.000Z",
        title: "Gutters blocked with leaves",
        summary: "The gutters overflow after the autumn leaves. The agent booked ClearFlow Gutters for Thursday the 5th to clear them, 85 pounds for the front and back.",
        facts: {},
        turns: [
          ["agent", G],
          ["user", "Evening. Rain's pouring straight over the gutters at the front, they must be full of leaves again, it's like a waterfall outside the door."],
          ["agent", "That time of year. ClearFlow Gutters can come on Thursday the 5th to clear the front and back."],
          ["user", "How much is that going to set me back?"],
          ["agent", "85 pounds for both, and they'll check the downpipes while they're up there."],
          ["user", "Go for it. Better than me up a ladder."],
          ...BYE,
        ],
        qs: [
          { category: "exact", query: "ClearFlow Gutters", turn: 2, needle: "ClearFlow Gutters" },
          { category: "paraphrase", query: "price to clear the gutters", turn: 4, needle: "85 pounds" },
          { category: "synonym", query: "roof drainage cleaning cost", turn: 4, needle: "85 pounds" },
        ],
      },
    ],
  },
  {
    user_id: "usr_035_ingrid",
    name: "Ingrid Solberg",
    calls: [
      {
        conversation_id: "conv_recall_035_01",
        started_at: "2026-08-19T21:14:00.000Z",
        title: "Locked out",
        summary: "The caller locked herself out with the keys inside. The agent sent Keyhole Kev's, a locksmith, there in forty minutes for a 95 pound call-out.",
        facts: {},
        turns: [
          ["agent", G],
          ["user", "Okay this is embarrassing, I've locked myself out. Keys are on the kitchen table, I can see them through the window."],
          ["agent", "Oh no. Are you safe where you are? I can get a locksmith to you."],
          ["user", "Yeah, I'm just sat on the step like an idiot. Please."],
          ["agent", "Keyhole Kev's can be there in forty minutes; it's a 95 pound call-out, including opening the door without damage."],
          ["user", "Ninety-five quid for five minutes' work. Fine, yes, do it."],
          ["agent", "Done, Kev is on his way, he'll ring you when he's close."],
          ...BYE,
        ],
        qs: [
          { category: "name", query: "Keyhole Kev", turn: 4, needle: "Keyhole Kev" },
          { category: "paraphrase", query: "how much did the locksmith charge", turn: 4, needle: "95 pound" },
          { category: "synonym", query: "someone to break into my flat", turn: 4, needle: "Keyhole Kev" },
          { category: "synonym", query: "emergency entry service cost", turn: 4, needle: "95 pound" },
        ],
      },
      {
        conversation_id: "conv_recall_035_02",
        started_at: "2026-10-02T16:02:00.000Z",
        title: "Cat sitter while away",
        summary: "The caller is away from the 12th to the 19th for her sister's fortieth in Porto. The agent booked Whiskers and Walks (sitter Aoife) twice a day at 14 pounds a visit; Aoife collects a spare key on the 11th.",
        facts: {},
        turns: [
          ["agent", G],
          ["user", "I'm away from the 12th to the 19th, my sister's fortieth in Porto, and I need someone to feed Sir Nibbles."],
          ["agent", "Of course. How often does he need a visit?"],
          ["user", "Twice a day, he's a diva. And he's on special food for his kidneys, it's in the cupboard above the fridge."],
          ["agent", "I've booked Whiskers and Walks for morning and evening visits, the 12th to the 19th, 14 pounds a visit. The sitter is called Aoife and she'll pick up a spare key on the 11th."],
          ["user", "Aoife, okay. Tell her he bites if you touch his tummy."],
          ["agent", "I've added that to the notes."],
          ...BYE,
        ],
        qs: [
          { category: "name", query: "Whiskers and Walks", turn: 4, needle: "Whiskers and Walks" },
          { category: "paraphrase", query: "who is feeding the cat while I'm away", turn: 4, needle: "Aoife" },
          { category: "synonym", query: "kitty minder during my holiday", turn: 4, needle: "Aoife" },
          { category: "number", query: "cat sitter price per visit", turn: 4, needle: "14 pounds" },
        ],
      },
      {
        conversation_id: "conv_recall_035_03",
        started_at: "2026-11-12T07:55:00.000Z",
        title: "Eye test booking",
        summary: "The caller's screen has been blurry and she gets headaches. The agent booked an eye test at Clearview Opticians on Saturday the 21st at 9:40 with Mr Haldane.",
        facts: {},
        turns: [
          ["agent", G],
          ["user", "Hi, quick one, my screen's gone all blurry by the end of the day and I keep getting headaches, I think I need my eyes tested."],
          ["agent", "That's worth checking. Clearview Opticians have a slot on Saturday the 21st at 9:40 with Mr Haldane."],
          ["user", "Saturday's good. Do I bring my old glasses?"],
          ["agent", "Yes, bring them and a list of any medicines. I've booked it: Saturday the 21st, 9:40, Clearview Opticians."],
          ["user", "Lovely, ta."],
          ...BYE,
        ],
        qs: [
          { category: "name", query: "Clearview Opticians", turn: 2, needle: "Clearview Opticians" },
          { category: "paraphrase", query: "when is my eye test", turn: 4, needle: "Saturday the 21st" },
          { category: "synonym", query: "vision examination appointment", turn: 4, needle: "Saturday the 21st" },
        ],
      },
    ],
  },
];
