// Plays a generated Agent the way the Academy would, from commands on stdin, so the test can run it in lockstep
// with the Python simulator (tests/test_csharp_agents.py). It sets the scene (the layout the simulator drew for each
// episode: positions, obstacle radii, which obstacles are active), steps the agent with the simulator's actions,
// does what Unity's physics would (trigger contacts) and prints rewards, episode ends and observations.
//
//   reset <x z of the agent> <goal_radius> <n goals> <x z>... <n obstacles> <x z radius active>...   (arena)
//   reset <cue>                                                                                      (corridor)
//   reset <pad x z>x2 <agent x z>x2 <pad_radius>                                                     (pads)
//   reset <flag x z> <agent x z>x2                                                                   (duel)
//   step <action values of every agent, continuous then discrete>
// prints  O <observations of every agent>  after a reset, and after a step
//         R <per agent: reward done interrupted> <group reward>  then  T <terminal observations> (if one ended)  O ...
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Reflection;
using UnityEngine;
using Unity.MLAgents;
using Unity.MLAgents.Actuators;
using Unity.MLAgents.Sensors;
using Unity.MLAgents.Policies;

public static class Harness
{
    const BindingFlags Any = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance;
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    static void Set(object o, string field, object value) { o.GetType().GetField(field, Any).SetValue(o, value); }
    static object Get(object o, string field) { return o.GetType().GetField(field, Any).GetValue(o); }
    static object Call(object o, string method, params object[] args)
    {
        return o.GetType().GetMethod(method, Any).Invoke(o, args);
    }

    static Agent NewAgent(Type type, int team)
    {
        var go = new GameObject();
        go.AddComponent<Rigidbody>();
        var parameters = go.AddComponent<BehaviorParameters>();
        parameters.TeamId = team;
        var agent = (Agent)Activator.CreateInstance(type);
        agent.gameObject = go;
        go.components.Add(agent);
        return agent;
    }

    static object NewArena(Type agentType, Agent[] agents)
    {
        var arenaType = agentType.Assembly.GetTypes().First(t => t.Name == agentType.Name + "Arena");
        var arena = Activator.CreateInstance(arenaType);
        ((Component)arena).gameObject = new GameObject();
        var slots = Array.CreateInstance(agentType, agents.Length);
        for (int i = 0; i < agents.Length; i++) { slots.SetValue(agents[i], i); }
        Set(arena, "agents", slots);
        return arena;
    }

    static Transform NewTransform(string tag = "Untagged")
    {
        var go = new GameObject();
        go.tag = tag;
        return go.transform;
    }

    static float F(string s) { return float.Parse(s, C); }
    static string Fmt(IEnumerable<float> values) { return string.Join(" ", values.Select(v => v.ToString("R", C))); }

    static List<float> Observe(Agent agent)
    {
        var sensor = new VectorSensor();
        agent.CollectObservations(sensor);
        return sensor.observations;
    }

    public static int Main(string[] args)
    {
        string kind = args[0];
        var type = AppDomain.CurrentDomain.GetAssemblies().SelectMany(a => a.GetTypes())
            .First(t => t.IsSubclassOf(typeof(Agent)) && t.Namespace == "UnityMLOps.Generated");
        int continuous = int.Parse(args[1]), discrete = int.Parse(args[2]);
        int period = (int)type.GetField("DecisionPeriod").GetValue(null);
        Agent[] agents;
        object arena = null;
        var obstacles = new List<Collider>();
        if (kind == "pads")
        {
            agents = new[] { NewAgent(type, 0), NewAgent(type, 0) };
            Set(arena = NewArena(type, agents), "pads", new[] { NewTransform(), NewTransform() });
            for (int i = 0; i < 2; i++) { Set(agents[i], "arena", arena); Set(agents[i], "partner", agents[1 - i]); }
        }
        else if (kind == "duel")
        {
            agents = new[] { NewAgent(type, 0), NewAgent(type, 1) };
            arena = NewArena(type, agents);
            Set(arena, "flag", NewTransform());
            for (int i = 0; i < 2; i++) { Set(agents[i], "arena", arena); Set(agents[i], "opponent", agents[1 - i]); }
        }
        else
        {
            agents = new[] { NewAgent(type, 0) };
            if (kind == "arena")
            {
                var goals = (Transform[])Get(agents[0], "goals");
                for (int i = 0; i < goals.Length; i++) { goals[i] = NewTransform(); }
                var obs = (Transform[])Get(agents[0], "obstacles");
                for (int i = 0; i < obs.Length; i++)
                {
                    obs[i] = NewTransform("Obstacle");
                    obstacles.Add(obs[i].gameObject.AddComponent<Collider>());
                }
                Physics.colliders.Clear();
                Physics.colliders.AddRange(obstacles);
                Physics.wallHalfSize = (float)Get(agents[0], "arenaHalfSize");
            }
        }
        foreach (var a in agents) { a.Initialize(); }
        if (arena != null) { Call(arena, "Start"); }
        var parameters = Academy.Instance.EnvironmentParameters.values;
        bool first = true;
        string line;
        while ((line = Console.ReadLine()) != null)
        {
            var w = line.Split(' ');
            if (w[0] == "reset")
            {
                if (kind == "arena") { ResetArena(agents[0], w, obstacles, parameters, first); }
                else if (kind == "corridor")
                {
                    if (first) { agents[0].OnEpisodeBegin(); }
                    Set(agents[0], "cue", int.Parse(w[1]));
                }
                else if (kind == "pads") { ResetPads(arena, agents, w); }
                else { ResetDuel(arena, agents, w); }
                first = false;
                Console.WriteLine("O " + Fmt(agents.SelectMany(a => Observe(a))));
                continue;
            }
            // a decision step: every agent acts, in order, then the scene's physics and managers run
            int k = 1;
            foreach (var a in agents)
            {
                a.reward = 0f; a.endedReward = 0f; a.done = false; a.interrupted = false;
                a.terminalObservation = null;
            }
            foreach (var a in agents)
            {
                if (a.done) { k += continuous + discrete; continue; }  // ended by another this step: no action
                var cont = new float[continuous];
                var disc = new int[discrete];
                for (int i = 0; i < continuous; i++) { cont[i] = F(w[k++]); }
                for (int i = 0; i < discrete; i++) { disc[i] = int.Parse(w[k++]); }
                a.OnActionReceived(new ActionBuffers(cont, disc));
            }
            Academy.Instance.StepCount += period;
            if (kind == "arena" && !agents[0].done)  // Unity's physics: a trigger collider entered
            {
                var me = agents[0];
                float r = (float)Get(me, "agentRadius");
                foreach (var c in obstacles)
                {
                    if (!c.gameObject.activeSelf || me.done) { continue; }
                    Vector3 gap = me.transform.localPosition - c.transform.localPosition; gap.y = 0f;
                    if (gap.magnitude < c.radius + r) { Call(me, "OnTriggerEnter", (Collider)c); }
                }
            }
            float group = 0f;
            if (arena != null)
            {
                var field = arena.GetType().GetField("group", Any);
                var g = field == null ? null : (SimpleMultiAgentGroup)field.GetValue(arena);
                if (g != null) { g.groupReward = 0f; }
                Call(arena, "FixedUpdate");
                group = g == null ? 0f : g.groupReward;
            }
            foreach (var a in agents)
            {
                if (a.done) { continue; }  // a new episode began: it has taken no step yet
                a.StepCount += period;
                if (a.MaxStep > 0 && a.StepCount >= a.MaxStep) { a.EpisodeInterrupted(); }
            }
            var results = new List<string>();
            for (int i = 0; i < agents.Length; i++)
            {
                var a = agents[i];
                results.Add((a.done ? a.endedReward : a.reward).ToString("R", C));
                results.Add(a.done ? "1" : "0");
                results.Add(a.interrupted ? "1" : "0");
            }
            results.Add(group.ToString("R", C));
            Console.WriteLine("R " + string.Join(" ", results));
            if (agents.Any(a => a.done))
            {
                Console.WriteLine("T " + Fmt(agents.SelectMany(a => a.terminalObservation ?? Observe(a))));
            }
            else
            {
                Console.WriteLine("O " + Fmt(agents.SelectMany(a => Observe(a))));
            }
        }
        return 0;
    }

    static void ResetArena(Agent me, string[] w, List<Collider> obstacles, Dictionary<string, float> parameters,
                           bool first)
    {
        int k = 1;
        var start = new Vector3(F(w[k++]), 0f, F(w[k++]));
        parameters["goal_radius"] = F(w[k++]);
        var goals = (Transform[])Get(me, "goals");
        int nGoals = int.Parse(w[k++]);
        var goalAt = new Vector3[nGoals];
        for (int i = 0; i < nGoals; i++) { goalAt[i] = new Vector3(F(w[k++]), 0f, F(w[k++])); }
        int nObstacles = int.Parse(w[k++]);
        var layout = new List<float[]>();
        for (int i = 0; i < nObstacles; i++) { layout.Add(new[] { F(w[k++]), F(w[k++]), F(w[k++]), F(w[k++]) }); }
        parameters["num_obstacles"] = layout.Count(o => o[3] > 0f);
        if (first) { me.OnEpisodeBegin(); }  // later episodes began when the last one ended
        // the scene the simulator drew for this episode (OnEpisodeBegin drew its own with Unity's random numbers)
        me.transform.localPosition = start;
        for (int i = 0; i < nGoals; i++) { goals[i].localPosition = goalAt[i]; }
        for (int i = 0; i < nObstacles; i++)
        {
            obstacles[i].transform.localPosition = new Vector3(layout[i][0], 0f, layout[i][1]);
            obstacles[i].radius = layout[i][2];
            obstacles[i].gameObject.SetActive(layout[i][3] > 0f);
        }
        Set(me, "goalIndex", 0);
        Set(me, "velocity", Vector3.zero);
        Set(me, "previousDistance", Call(me, "DistanceToGoal"));
    }

    static void ResetPads(object arena, Agent[] agents, string[] w)
    {
        var pads = (Transform[])Get(arena, "pads");
        pads[0].localPosition = new Vector3(F(w[1]), 0f, F(w[2]));
        pads[1].localPosition = new Vector3(F(w[3]), 0f, F(w[4]));
        agents[0].transform.localPosition = new Vector3(F(w[5]), 0f, F(w[6]));
        agents[1].transform.localPosition = new Vector3(F(w[7]), 0f, F(w[8]));
        Set(arena, "padRadius", F(w[9]));
        Set(arena, "decisions", 0);
        Set(arena, "heldBefore", (int)((bool)Call(arena, "Held", 0) ? 1 : 0) + ((bool)Call(arena, "Held", 1) ? 1 : 0));
        foreach (var a in agents) { Set(a, "velocity", Vector3.zero); }
    }

    static void ResetDuel(object arena, Agent[] agents, string[] w)
    {
        var flag = (Transform)Get(arena, "flag");
        Set(arena, "decisions", 0);
        flag.localPosition = new Vector3(F(w[1]), 0f, F(w[2]));
        agents[0].transform.localPosition = new Vector3(F(w[3]), 0f, F(w[4]));
        agents[1].transform.localPosition = new Vector3(F(w[5]), 0f, F(w[6]));
        foreach (var a in agents)
        {
            Set(a, "velocity", Vector3.zero);
            Set(a, "previousDistance", Vector3.Distance(a.transform.localPosition, flag.localPosition));
        }
    }
}
