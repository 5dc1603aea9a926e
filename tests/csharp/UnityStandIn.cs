// A stand-in for the parts of UnityEngine and ML-Agents (com.unity.ml-agents 3.x) that the generated Agents use,
// with the same signatures, so the generated C# is compiled by a real C# compiler (mono-mcs) and run by
// tests/csharp/Harness.cs in lockstep with the Python simulator. Where Unity has documented semantics the
// generated code relies on, the stand-in follows them: a raycast does not detect a collider its origin is inside,
// EndEpisode calls OnEpisodeBegin at once, rewards added after EndEpisode belong to the next episode.
using System;
using System.Collections.Generic;

namespace UnityEngine
{
    public struct Vector3
    {
        public float x, y, z;
        public Vector3(float x, float y, float z) { this.x = x; this.y = y; this.z = z; }
        public static Vector3 zero { get { return new Vector3(0f, 0f, 0f); } }
        public static Vector3 forward { get { return new Vector3(0f, 0f, 1f); } }
        public static Vector3 up { get { return new Vector3(0f, 1f, 0f); } }
        public static Vector3 down { get { return new Vector3(0f, -1f, 0f); } }
        public float magnitude { get { return (float)Math.Sqrt(x * x + y * y + z * z); } }
        public Vector3 normalized
        {
            get { float m = magnitude; return m > 1e-5f ? this / m : zero; }  // Unity: zero below 1e-5
        }
        public static Vector3 operator +(Vector3 a, Vector3 b) { return new Vector3(a.x + b.x, a.y + b.y, a.z + b.z); }
        public static Vector3 operator -(Vector3 a, Vector3 b) { return new Vector3(a.x - b.x, a.y - b.y, a.z - b.z); }
        public static Vector3 operator -(Vector3 a) { return new Vector3(-a.x, -a.y, -a.z); }
        public static Vector3 operator *(Vector3 a, float k) { return new Vector3(a.x * k, a.y * k, a.z * k); }
        public static Vector3 operator *(float k, Vector3 a) { return new Vector3(a.x * k, a.y * k, a.z * k); }
        public static Vector3 operator /(Vector3 a, float k) { return new Vector3(a.x / k, a.y / k, a.z / k); }
        public static float Dot(Vector3 a, Vector3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
        public static float Distance(Vector3 a, Vector3 b) { return (a - b).magnitude; }
    }

    public struct Quaternion
    {
        public static Quaternion LookRotation(Vector3 forward, Vector3 upwards) { return new Quaternion(); }
    }

    public static class Mathf
    {
        public const float PI = (float)Math.PI;
        public static float Clamp(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }
        public static int Clamp(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }
        public static float Abs(float v) { return Math.Abs(v); }
        public static float Cos(float v) { return (float)Math.Cos(v); }
        public static float Sin(float v) { return (float)Math.Sin(v); }
        public static float Sqrt(float v) { return (float)Math.Sqrt(v); }
        public static float Exp(float v) { return (float)Math.Exp(v); }
        public static float Min(float a, float b) { return a < b ? a : b; }
        public static int Min(int a, int b) { return a < b ? a : b; }
        public static float Max(float a, float b) { return a > b ? a : b; }
        public static int Max(int a, int b) { return a > b ? a : b; }
        public static int RoundToInt(float v) { return (int)Math.Round(v, MidpointRounding.ToEven); }
    }

    public static class Random
    {
        static System.Random rng = new System.Random(0);
        public static void InitState(int seed) { rng = new System.Random(seed); }
        public static float Range(float lo, float hi) { return lo + (float)rng.NextDouble() * (hi - lo); }
        public static int Range(int lo, int hi) { return rng.Next(lo, hi); }  // max exclusive, as Unity's int overload
    }

    public static class Time { public static float fixedDeltaTime = 0.02f; }

    public enum KeyCode { LeftShift }

    public static class Input
    {
        public static float GetAxis(string axis) { return 0f; }
        public static bool GetKey(KeyCode key) { return false; }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public class TooltipAttribute : Attribute { public TooltipAttribute(string text) { } }

    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
    public class RequireComponent : Attribute { public RequireComponent(Type type) { } }

    public class Object { }

    public class GameObject : Object
    {
        public readonly List<Component> components = new List<Component>();
        public bool activeSelf = true;
        public string tag = "Untagged";
        public Transform transform;
        public GameObject() { transform = AddComponent<Transform>(); }
        public void SetActive(bool value) { activeSelf = value; }
        public T AddComponent<T>() where T : Component, new()
        {
            var c = new T(); c.gameObject = this; components.Add(c); return c;
        }
        public T GetComponent<T>() where T : Component
        {
            foreach (var c in components) { if (c is T) { return (T)c; } }
            return null;
        }
    }

    public class Component : Object
    {
        public GameObject gameObject;
        public Transform transform { get { return gameObject.transform; } }
        public T GetComponent<T>() where T : Component { return gameObject.GetComponent<T>(); }
        public bool CompareTag(string tag) { return gameObject.tag == tag; }
    }

    public class Behaviour : Component { }
    public class MonoBehaviour : Behaviour { }

    public class Transform : Component
    {
        public Vector3 localPosition;
        public Vector3 position { get { return localPosition; } set { localPosition = value; } }  // no parent here
        public Quaternion rotation;
    }

    public class Rigidbody : Component { public bool isKinematic; }
    public class Camera : Behaviour { }

    /// <summary>A round obstacle (a vertical cylinder: a circle in the XZ plane), as the arenas use.</summary>
    public class Collider : Component { public float radius = 0.5f; }

    public struct RaycastHit { public float distance; }

    /// <summary>The scene's physics: the arena's four walls and its active round colliders.</summary>
    public static class Physics
    {
        public static float wallHalfSize = float.PositiveInfinity;
        public static readonly List<Collider> colliders = new List<Collider>();

        public static bool Raycast(Vector3 origin, Vector3 direction, out RaycastHit hit, float maxDistance)
        {
            float best = float.PositiveInfinity;
            if (!float.IsInfinity(wallHalfSize))
            {
                if (direction.x != 0f) { best = Math.Min(best, ((direction.x > 0 ? wallHalfSize : -wallHalfSize) - origin.x) / direction.x); }
                if (direction.z != 0f) { best = Math.Min(best, ((direction.z > 0 ? wallHalfSize : -wallHalfSize) - origin.z) / direction.z); }
            }
            foreach (var c in colliders)
            {
                if (!c.gameObject.activeSelf) { continue; }
                Vector3 m = origin - c.transform.localPosition; m.y = 0f;
                float b = m.x * direction.x + m.z * direction.z;
                float cc = m.x * m.x + m.z * m.z - c.radius * c.radius;
                if (cc < 0f) { continue; }  // Unity: a collider the ray starts inside is not detected
                float disc = b * b - cc;
                if (disc < 0f) { continue; }
                float t = -b - (float)Math.Sqrt(disc);
                if (t >= 0f && t < best) { best = t; }
            }
            hit = new RaycastHit { distance = best };
            return best <= maxDistance;
        }
    }
}

namespace Unity.MLAgents.Sensors
{
    public class VectorSensor
    {
        public readonly System.Collections.Generic.List<float> observations = new System.Collections.Generic.List<float>();
        public void AddObservation(float value) { observations.Add(value); }
        public void AddObservation(int value) { observations.Add(value); }
        public void AddObservation(bool value) { observations.Add(value ? 1f : 0f); }
    }
}

namespace Unity.MLAgents.Actuators
{
    public struct ActionSegment<T> where T : struct
    {
        readonly T[] values;
        public ActionSegment(T[] values) { this.values = values; }
        public int Length { get { return values == null ? 0 : values.Length; } }
        public T this[int i] { get { return values[i]; } set { values[i] = value; } }
    }

    public struct ActionBuffers
    {
        public ActionSegment<float> ContinuousActions;
        public ActionSegment<int> DiscreteActions;
        public ActionBuffers(float[] continuous, int[] discrete)
        {
            ContinuousActions = new ActionSegment<float>(continuous);
            DiscreteActions = new ActionSegment<int>(discrete);
        }
    }
}

namespace Unity.MLAgents.Policies
{
    public class BehaviorParameters : UnityEngine.Component
    {
        public string BehaviorName;
        public int TeamId;
    }
}

namespace Unity.MLAgents
{
    using UnityEngine;
    using Unity.MLAgents.Actuators;
    using Unity.MLAgents.Sensors;

    public class EnvironmentParameters
    {
        public readonly Dictionary<string, float> values = new Dictionary<string, float>();
        public float GetWithDefault(string key, float defaultValue)
        {
            float v; return values.TryGetValue(key, out v) ? v : defaultValue;
        }
    }

    public class StatsRecorder
    {
        public readonly List<KeyValuePair<string, float>> recorded = new List<KeyValuePair<string, float>>();
        public void Add(string key, float value) { recorded.Add(new KeyValuePair<string, float>(key, value)); }
    }

    public class Academy
    {
        static Academy instance;
        public static Academy Instance { get { if (instance == null) { instance = new Academy(); } return instance; } }
        public readonly EnvironmentParameters EnvironmentParameters = new EnvironmentParameters();
        public readonly StatsRecorder StatsRecorder = new StatsRecorder();
        public int StepCount;
        public event Action OnEnvironmentReset;
        public void ResetEnvironment() { if (OnEnvironmentReset != null) { OnEnvironmentReset(); } }
    }

    /// <summary>ML-Agents' Agent, reduced to what a decision step does; the harness plays the Academy.</summary>
    public class Agent : MonoBehaviour
    {
        public int MaxStep;
        public int StepCount;          // agent steps in this episode (DecisionPeriod per decision)
        public float reward;           // added since the harness last read it, in the current episode
        public float endedReward;      // what the episode that this step ended had collected
        public bool done, interrupted; // the episode that this step ended, and how
        public List<float> terminalObservation;  // collected when it ended, before the next one began
        public int episodes;

        public virtual void Initialize() { }
        public virtual void OnEpisodeBegin() { }
        public virtual void CollectObservations(VectorSensor sensor) { }
        public virtual void OnActionReceived(ActionBuffers actions) { }
        public virtual void Heuristic(in ActionBuffers actionsOut) { }

        public void AddReward(float increment) { reward += increment; }
        public void SetReward(float value) { reward = value; }

        public void EndEpisode() { Finish(false); }
        public void EpisodeInterrupted() { Finish(true); }

        void Finish(bool wasInterrupted)
        {
            done = true;
            interrupted = wasInterrupted;
            endedReward = reward;  // what comes after belongs to the next episode
            reward = 0f;
            var sensor = new VectorSensor();
            CollectObservations(sensor);  // ML-Agents collects the last observation before the reset
            terminalObservation = sensor.observations;
            episodes++;
            StepCount = 0;
            OnEpisodeBegin();  // as ML-Agents does, within the same step
        }
    }

    public class SimpleMultiAgentGroup
    {
        public readonly List<Agent> agents = new List<Agent>();
        public float groupReward;
        public bool ended, interrupted;
        public void RegisterAgent(Agent agent) { agents.Add(agent); }
        public void AddGroupReward(float reward) { groupReward += reward; }
        public void EndGroupEpisode() { ended = true; foreach (var a in agents) { a.EndEpisode(); } }
        public void GroupEpisodeInterrupted()
        {
            ended = true; interrupted = true;
            foreach (var a in agents) { a.EpisodeInterrupted(); }
        }
    }
}
