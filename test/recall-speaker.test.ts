/**
 * A recall hit's `speaker` says who said its text: a hit that holds the turn before it as well as the
 * matched one ("agent: ... | user: ...") is an `exchange`, not "user" (which read as if the caller had
 * said the agent's words too); a hit of one turn keeps its speaker.
 */
import { describe, expect, it } from "vitest";
import { uid } from "./helpers";
import { conversationWith, record, recallFor } from "./recall-helpers";

describe("a recall hit's speaker", () => {
  it("is 'exchange' when the text holds the agent's question and the user's short answer", async () => {
    const user = uid("speaker");
    await record(conversationWith([["agent", "Which colour would you like for the new kettle?"], ["user", "Turquoise please"]], { userId: user }));
    const [hit] = (await recallFor(user, "turquoise")).results;
    expect(hit).toMatchObject({ speaker: "exchange", text: "agent: Which colour would you like for the new kettle? | user: Turquoise please" });
  });

  it("stays the one who spoke when the text is one turn", async () => {
    const user = uid("speaker");
    await record(
      conversationWith(
        [
          // Turns of 120 characters or more come alone (a shorter one brings the turn before it).
          ["agent", "Hello, this is Acme support, and I can help with anything about your order today, whatever it is that you need from us."],
          ["user", "My order 4471 arrived yesterday with a cracked screen, and I would like a replacement sent to me as soon as you possibly can."],
          ["agent", "I have arranged a replacement for the cracked screen; it ships today by express courier and should reach you by Thursday."],
        ],
        { userId: user },
      ),
    );
    const hits = (await recallFor(user, "cracked screen")).results;
    const said = (who: string) => hits.find((h) => h.text.includes(who === "user" ? "would like a replacement" : "I have arranged"));
    expect(said("user")).toMatchObject({ speaker: "user" });
    expect(said("agent")).toMatchObject({ speaker: "agent" });
    for (const h of hits) expect(h.text).not.toMatch(/\| /);
  });
});
