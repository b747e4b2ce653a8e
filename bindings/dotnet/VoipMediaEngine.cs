// LanScape's managed registration API (namespace LanScape, class VoipMediaEngine) over
// liblanscape_sip: an application written against the documented LanScape signatures for
// registration compiles against this assembly unchanged.
using System;
using System.Runtime.InteropServices;
using LanScape.Sip;

namespace LanScape
{
    /// <summary>
    /// A telephony engine: one SIP port, its phone lines, and the names it registers. The
    /// engine handle lives in a SafeHandle; <see cref="Dispose"/> (or
    /// <see cref="StopSipTelephony"/>) unregisters every name and stops the engine.
    /// </summary>
    public sealed class VoipMediaEngine : IDisposable
    {
        /// <summary>Return values and events; the values of the C ABI.</summary>
        public enum TELEPHONY_RETURN_VALUE
        {
            SipSuccess = 0,
            SipCallFailure = 1,
            SipBadParameter = 2,
            SipInvalidHandle = 3,
            SipProxyNotEnabled = 4,
            SipUnknownHost = 5,
            SipRegisterBadNameList = 6,
            SipDomainNameNotDefined = 7,
            SipRegisterError = 8,
            SipRegisterTimeOut = 9,
            SipRegisterAuthorizationError = 10,
            SipRegisterIntervalError = 11,
            SipThreadCreationError = 12,
            SipSocketError = 13,
            SipInternalError = 14,
            SipRegisterSuccess = 15,
            SipUnregistered = 16,
            SipRegisterNameUnknown = 17,
            SipProfileInUse = 18,
            SipProfileNotFound = 19,
            SipTransportNotSupported = 20,
            SipTlsError = 21,
            SipBufferTooSmall = 22,
        }

        /// <summary>What an event concerns: registrations are global notifications.</summary>
        public enum SIP_NOTIFY_TYPE
        {
            GLOBAL_NOTIFICATION = 0,
            PHONE_LINE_NOTIFICATION = 1,
        }

        /// <summary>The registration state of one name.</summary>
        public enum SIP_REGISTRATION_STATE
        {
            SipStateUnregistered = 0,
            SipStateRegistering = 1,
            SipStateRegistered = 2,
            SipStateUnregistering = 3,
            SipStateRetryWait = 4,
        }

        /// <summary>The transport of registrations (<see cref="SetSipRegisterTransport"/>).</summary>
        public enum SIP_TRANSPORT
        {
            SipTransportUdp = 0,
            SipTransportTcp = 1,
            SipTransportTls = 2,
            SipTransportAuto = 3,
        }

        /// <summary>
        /// LanScape's event callback. For registration events <paramref name="NotifyType"/> is
        /// GLOBAL_NOTIFICATION, <paramref name="PhoneLine"/> the name's first line (-1 when
        /// names are not per line), and <paramref name="EventData"/> the name (a string).
        /// Runs on the engine's event thread, in the order things happened.
        /// </summary>
        public delegate void SIPCALLBACKPROC(VoipMediaEngine MediaEngine, SIP_NOTIFY_TYPE NotifyType, int PhoneLine,
            TELEPHONY_RETURN_VALUE NotifyEvent, object EventData);

        /// <summary>How the engine starts (the members that concern registration).</summary>
        public class START_SIP_TELEPHONY_PARAMS
        {
            /// <summary>Phone lines, 1 to 100000.</summary>
            public uint NumPhoneLinesRequested = 1;
            /// <summary>Receives every event (may be null: see <see cref="Notification"/>).</summary>
            public SIPCALLBACKPROC UserNotifyCallbackProc;
            /// <summary>The local address to bind (null or empty: every IPv4 address).</summary>
            public string IpAddressOfThisHost;
            /// <summary>The local SIP UDP port (0: any free port).</summary>
            public int SipPort = 5060;
            /// <summary>Sent as User-Agent.</summary>
            public string PhoneName;
            /// <summary>Accepted for compatibility; registrations carry no display name.</summary>
            public string PhoneDisplayName;
            /// <summary>Every SIP message to the log (<see cref="Log"/> is not needed for it).</summary>
            public bool LogSipMessages;
        }

        /// <summary>One registration event, as <see cref="Notification"/> raises it.</summary>
        public sealed class NotificationEventArgs : EventArgs
        {
            internal NotificationEventArgs(TELEPHONY_RETURN_VALUE code, string name, int line)
            {
                Code = code;
                Name = name;
                PhoneLine = line;
            }

            public TELEPHONY_RETURN_VALUE Code { get; private set; }
            public string Name { get; private set; }
            public int PhoneLine { get; private set; }
        }

        // The one native callback: a static delegate, so the GC never collects it. Its user
        // data is a GCHandle of the engine, held from start to stop.
        private static readonly Native.NotifyCallback Trampoline = OnNative;

        // Its Owner (a GCHandle of this engine, the native callback's user data) keeps an
        // engine that is not stopped alive, as its registrations are; freed after the stop.
        private readonly EngineHandle engine = new EngineHandle();
        private SIPCALLBACKPROC userCallback;
        private bool waitForFirstCycle = true;
        private bool shareChallenges;

        /// <summary>Raised for every registration event (after the LanScape callback).</summary>
        public event EventHandler<NotificationEventArgs> Notification;

        /// <summary>
        /// Raised when a handler of <see cref="Notification"/> or the LanScape callback throws:
        /// an exception must not cross into native code, so it is caught and reported here.
        /// </summary>
        public event EventHandler<UnhandledExceptionEventArgs> CallbackException;

        public VoipMediaEngine() { }

        /// <summary>Whether the engine is started.</summary>
        public bool IsStarted => !engine.IsInvalid && !engine.IsClosed;

        /// <summary>
        /// Whether <see cref="EnableSipRegisterServer"/> waits for the first register cycle of
        /// every name and returns its outcome (SipRegisterTimeOut, SipRegisterAuthorizationError,
        /// SipRegisterIntervalError, SipRegisterError), as LanScape's reference describes.
        /// On by default here; off, the call returns at once and outcomes arrive as events only.
        /// Called from inside an event of this engine, a waiting call returns SipCallFailure.
        /// </summary>
        public bool WaitForRegisterResult
        {
            get { return waitForFirstCycle; }
            set
            {
                waitForFirstCycle = value;
                if (IsStarted) engine.Use(h => Native.EnableSipRegisterWaitMode(h, value ? 1 : 0));
            }
        }

        /// <summary>
        /// Whether the names of each later <see cref="EnableSipRegisterServer"/> share their
        /// digest challenges (off by default): a name not challenged yet answers the challenge
        /// another name received, one REGISTER per name instead of two. For registrars that
        /// accept a realm's nonce from any user (Kamailio, Asterisk, FreeSWITCH); sharing ends
        /// by itself at one that refuses such answers.
        /// </summary>
        public bool ShareChallenges
        {
            get { return shareChallenges; }
            set
            {
                shareChallenges = value;
                if (IsStarted) engine.Use(h => Native.EnableSipSharedChallenges(h, value ? 1 : 0));
            }
        }

        /// <summary>The text of a return value (its name).</summary>
        public static string ReturnValueText(TELEPHONY_RETURN_VALUE value) => Native.CodeName((int)value);

        /// <summary>Why the last call on this thread failed, in words.</summary>
        public static string LastErrorText => Native.LastErrorText();

        public TELEPHONY_RETURN_VALUE StartSipTelephony(START_SIP_TELEPHONY_PARAMS StartParams)
        {
            if (StartParams == null || StartParams.SipPort < 0) return TELEPHONY_RETURN_VALUE.SipBadParameter;
            if (IsStarted || engine.IsClosed) return TELEPHONY_RETURN_VALUE.SipCallFailure;
            string ip = string.IsNullOrEmpty(StartParams.IpAddressOfThisHost) ? null : StartParams.IpAddressOfThisHost;
            ulong handle;
            int rc = Native.StartSipTelephony(Native.Utf8(StartParams.PhoneName), StartParams.NumPhoneLinesRequested,
                (uint)StartParams.SipPort, Native.Utf8(ip), out handle);
            if (rc != 0) return (TELEPHONY_RETURN_VALUE)rc;
            engine.Set(handle);
            userCallback = StartParams.UserNotifyCallbackProc;
            engine.Owner = GCHandle.Alloc(this);
            rc = Native.SetNotificationCallback(handle, Trampoline, GCHandle.ToIntPtr(engine.Owner));
            if (rc == 0) rc = Native.EnableSipRegisterWaitMode(handle, waitForFirstCycle ? 1 : 0);
            if (rc == 0) rc = Native.EnableSipSharedChallenges(handle, shareChallenges ? 1 : 0);
            if (rc == 0 && StartParams.LogSipMessages) rc = Native.EnableSipTrace(handle, 1);
            if (rc != 0) StopSipTelephony();
            return (TELEPHONY_RETURN_VALUE)rc;
        }

        /// <summary>Unregisters every name (at most 4 s), stops the engine, releases the handle.</summary>
        public TELEPHONY_RETURN_VALUE StopSipTelephony()
        {
            if (!IsStarted) return TELEPHONY_RETURN_VALUE.SipInvalidHandle;
            // StopSipTelephony, at once or, if a call is in progress on another thread, when it
            // ends; no event runs after it (unless this runs inside one).
            engine.Dispose();
            return TELEPHONY_RETURN_VALUE.SipSuccess;
        }

        public void Dispose()
        {
            if (IsStarted) StopSipTelephony();
        }

        public TELEPHONY_RETURN_VALUE EnableSipRegisterServer(string NamesToRegister, bool RegisterPhoneLines,
            bool RegisterThroughProxy, string RegistrationServerAddress, uint RegistrationServerPort,
            uint RegistrationUpdateIntervalSeconds, uint RegistrationExpireTimeSeconds, uint TimeOutMs,
            bool RegisterNatAutoDetectEnabled)
        {
            return Call(h => Native.EnableSipRegisterServer(h, Native.Utf8(NamesToRegister), RegisterPhoneLines ? 1 : 0,
                RegisterThroughProxy ? 1 : 0, Native.Utf8(RegistrationServerAddress), RegistrationServerPort,
                RegistrationUpdateIntervalSeconds, RegistrationExpireTimeSeconds, TimeOutMs,
                RegisterNatAutoDetectEnabled ? 1 : 0));
        }

        public TELEPHONY_RETURN_VALUE DisableSipRegisterServer() => Call(Native.DisableSipRegisterServer);

        public TELEPHONY_RETURN_VALUE EnableSipDomain(string Domain) =>
            Call(h => Native.EnableSipDomain(h, Native.Utf8(Domain)));

        public TELEPHONY_RETURN_VALUE DisableSipDomain() => Call(Native.DisableSipDomain);

        public TELEPHONY_RETURN_VALUE EnableSipProxyServer(string ProxyServerAddress, uint ProxyServerPort) =>
            Call(h => Native.EnableSipProxyServer(h, Native.Utf8(ProxyServerAddress), ProxyServerPort));

        public TELEPHONY_RETURN_VALUE DisableSipProxyServer() => Call(Native.DisableSipProxyServer);

        /// <summary>Digest credentials for a realm (null, "" or "*": any realm).</summary>
        public TELEPHONY_RETURN_VALUE AddAuthorizationCredentials(string UserName, string Password, string Realm) =>
            Call(h => Native.AddAuthorizationCredentials(h, Native.Utf8(UserName), Native.Utf8(Password), Native.Utf8(Realm)));

        public TELEPHONY_RETURN_VALUE ClearAuthorizationCredentials() => Call(Native.ClearAuthorizationCredentials);

        /// <summary>
        /// SIP keep-alives (CRLF, to every registrar or proxy in use) on or off, every
        /// <paramref name="KeepAliveIntervalSeconds"/> (1 to 86400); RTP keep-alives are
        /// accepted and ignored (there is no media).
        /// </summary>
        public TELEPHONY_RETURN_VALUE EnableKeepAliveTransmissions(bool SipKeepAliveEnabled, bool RtpKeepAliveEnabled,
            uint KeepAliveIntervalSeconds) =>
            Call(h => Native.EnableKeepAliveTransmissionsEx(h, SipKeepAliveEnabled ? 1 : 0, RtpKeepAliveEnabled ? 1 : 0,
                KeepAliveIntervalSeconds));

        /// <summary>
        /// "NULL" SIP messages (CRLF) to <paramref name="Host"/>:<paramref name="Port"/> at once
        /// and every <paramref name="KeepAliveSeconds"/> while <paramref name="EnableState"/>;
        /// false stops them.
        /// </summary>
        public TELEPHONY_RETURN_VALUE SendSipKeepAlive(string Host, uint Port, bool EnableState, int KeepAliveSeconds) =>
            Call(h => Native.SendSipKeepAliveEx(h, Native.Utf8(Host), Port, EnableState ? 1 : 0, KeepAliveSeconds));

        /// <summary>The transport of the registrations enabled next, and their local TCP/TLS port.</summary>
        public TELEPHONY_RETURN_VALUE SetSipRegisterTransport(SIP_TRANSPORT Transport, uint LocalPort) =>
            Call(h => Native.SetSipRegisterTransport(h, (uint)Transport, LocalPort));

        /// <summary>TLS trust anchors: PEM text or the path of a PEM file.</summary>
        public TELEPHONY_RETURN_VALUE AddSipTlsTrustedCertificates(string Pem) =>
            Call(h => Native.AddSipTlsTrustedCertificates(h, Native.Utf8(Pem)));

        /// <summary>DNS servers ("ip[:port], ..."; null or "": the system's).</summary>
        public TELEPHONY_RETURN_VALUE SetSipDnsServers(string Servers) =>
            Call(h => Native.SetSipDnsServers(h, Native.Utf8(Servers)));

        /// <summary>How long StopSipTelephony waits at most for the unregistrations (100 to 600000 ms).</summary>
        public TELEPHONY_RETURN_VALUE SetSipUnregisterTimeout(uint TimeoutMs) =>
            Call(h => Native.SetSipUnregisterTimeout(h, TimeoutMs));

        /// <summary>The registration state of a name; reflects every event already raised.</summary>
        public TELEPHONY_RETURN_VALUE GetSipRegistrationState(string Name, out SIP_REGISTRATION_STATE State)
        {
            int state = 0;
            var rc = Call(h => Native.GetSipRegistrationState(h, Native.Utf8(Name), out state));
            State = (SIP_REGISTRATION_STATE)state;
            return rc;
        }

        /// <summary>The local SIP UDP port bound.</summary>
        public TELEPHONY_RETURN_VALUE GetLocalSipPort(out uint Port)
        {
            uint port = 0;
            var rc = Call(h => Native.GetLocalSipPort(h, out port));
            Port = port;
            return rc;
        }

        private TELEPHONY_RETURN_VALUE Call(Func<ulong, int> call)
        {
            if (!IsStarted) return TELEPHONY_RETURN_VALUE.SipInvalidHandle;
            return (TELEPHONY_RETURN_VALUE)engine.Use(call);
        }

        private static void OnNative(ulong handle, int code, IntPtr name, int line, IntPtr user)
        {
            VoipMediaEngine me = null;
            try
            {
                me = GCHandle.FromIntPtr(user).Target as VoipMediaEngine;
                if (me == null) return;
                var value = (TELEPHONY_RETURN_VALUE)code;
                string text = Native.FromUtf8(name);
                var callback = me.userCallback;
                if (callback != null) callback(me, SIP_NOTIFY_TYPE.GLOBAL_NOTIFICATION, line, value, text);
                var handlers = me.Notification;
                if (handlers != null) handlers(me, new NotificationEventArgs(value, text, line));
            }
            catch (Exception e)
            {
                // Never into native code: reported, else written to standard error.
                try
                {
                    var report = me == null ? null : me.CallbackException;
                    if (report != null) report(me, new UnhandledExceptionEventArgs(e, false));
                    else Console.Error.WriteLine("LanScape.Sip: a notification handler threw: " + e);
                }
                catch (Exception)
                {
                }
            }
        }
    }
}
